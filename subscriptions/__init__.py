"""Push subscriptions: the delivery building blocks of the dispatcher.

One purpose per module, and nothing here imports ``queues.api``:

* ``retry``: Zaqar's ``_retry_policy`` parsed into a validated schedule;
* ``classify``: what a delivery result means (delivered, retry, failed...);
* ``ssrf``: which addresses a webhook may reach;
* ``http``: an HTTP client (aiohttp) that connects only to addresses the guard checked;
* ``payload``: the notification payload and its stable delivery id;
* ``webhook`` and ``mailto``: one delivery over HTTP or SMTP.

Importing the package imports none of them, so the API can use ``retry``
without pulling in aiohttp.
"""

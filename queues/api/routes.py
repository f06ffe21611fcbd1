"""The single route table."""

from __future__ import annotations

from queues.api.resources import claims, home, messages, queues, share, subscriptions
from queues.api.resources.base import Context, Resource
from queues.api.signed import KeySource
from queues.api.subscription_rules import SubscriptionRules

Q = "/v2/queues/{queue_name}"


def routes(ctx: Context, keys: KeySource) -> list[tuple[str, Resource]]:
    table: list[tuple[str, Resource]] = [
        ("/", home.Versions(ctx)),
        ("/v2/", home.Home(ctx)),
        ("/v2/ping", home.Ping(ctx)),
        ("/v2/queues", queues.QueueCollection(ctx)),
        (Q, queues.QueueItem(ctx)),
        (Q + "/stats", queues.QueueStats(ctx)),
        (Q + "/purge", queues.QueuePurge(ctx)),
        (Q + "/share", share.QueueShare(ctx, keys)),
        (Q + "/messages", messages.MessageCollection(ctx)),
        (Q + "/messages/{message_id}", messages.MessageItem(ctx)),
        (Q + "/claims", claims.ClaimCollection(ctx)),
        (Q + "/claims/{claim_id}", claims.ClaimItem(ctx)),
    ]
    if hasattr(ctx.storage, "subscriptions"):  # drivers still being completed
        table += _subscription_routes(ctx, keys)
    if ctx.settings.api.admin_mode:
        table.append(("/v2/health", home.Health(ctx)))
    return table


def _subscription_routes(ctx: Context, keys: KeySource) -> list[tuple[str, Resource]]:
    rules = SubscriptionRules(ctx.settings)
    confirmations = subscriptions.Confirmations(ctx, keys)
    collection = Q + "/subscriptions"
    item = collection + "/{subscription_id}"
    shared = (ctx, rules, confirmations)
    return [
        (collection, subscriptions.SubscriptionCollection(*shared)),
        (item, subscriptions.SubscriptionItem(*shared)),
        (item + "/confirm", subscriptions.SubscriptionConfirm(*shared)),
        (item + "/deliveries", subscriptions.SubscriptionDeliveries(ctx)),
        (item + "/dead_letters", subscriptions.SubscriptionDeadLetters(ctx)),
    ]

from setuptools import find_packages, setup

setup(
    name="mailslot",
    version="0.1.0",
    description="A message-queue service wire-compatible with OpenStack Zaqar's v2 API",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["queues*", "signing*", "subscriptions*"]),
    package_data={"queues": ["storage/redis/scripts/*.lua"]},
    install_requires=[
        "falcon>=4.0,<5",
        "gunicorn>=23",
        "uvicorn[standard]>=0.30",
        "uvicorn-worker>=0.2",
        "orjson>=3.10",
        "PyYAML>=6",
        "click>=8.1",
        "jsonschema>=4.20",
        "platformdirs>=4",
        "itsdangerous>=2.2,<3",
        # the dispatcher's HTTP client (subscriptions/http.py: a third of
        # httpx's CPU per request, measured) and its certificate roots
        "aiohttp>=3.10",
        "certifi>=2024.2",
        "jmespath>=1.0",
    ],
    extras_require={
        "redis": ["redis[hiredis]>=5.0"],
        "mongodb": ["pymongo>=4.13"],
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.24",
            "time-machine>=2.14",
            "python-zaqarclient==4.7.0",
            "redis[hiredis]>=5.0",
            "pymongo>=4.13",
            "aiosmtpd>=1.4",
            # the tests' (and bench's, example's) own HTTP client
            "httpx>=0.27",
            # tests/unit/test_bench_report.py draws the benchmark report's charts
            "matplotlib>=3.8",
        ],
        # python -m bench.report: docs/benchmarks.md and its PNG charts
        "bench": ["matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["mailslot = queues.cli:main"]},
)

"""All of fastmon's settings, in one place.

A site sets ``FASTMON = {...}`` in its Django settings; every key it leaves out takes the default
below. Broker and monitor settings fall back to the variables every testbed agent reads
(``ACTIVEMQ_*``, ``SWF_MONITOR_URL``, ``SWF_API_TOKEN``): a Django setting of that name
(swf-monitor reads them from its .env into its settings), else the environment, so fastmon runs
in a testbed shell or in swf-monitor with no configuration of its own. Values are read at each
access, so ``override_settings`` and changed environment variables take effect at once in tests.

    from fastmon.conf import fastmon_settings
    fastmon_settings.NAMESPACE
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, overload

from django.conf import settings

from fastmon.testbed import TestbedConfigError, config_path, read_namespace

TESTBED_NAMESPACE_MODES = ("optional", "required", "ignore")


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    """The site's setting of that name, else the environment variable, else ``default``."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        value = os.environ.get(name, "")
    return str(value).strip() or default


def _env_flag(name: str) -> bool:
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def _broker_hosts() -> list[tuple[str, int]]:
    return [(_env("ACTIVEMQ_HOST", "localhost"), int(_env("ACTIVEMQ_PORT", "61613")))]


@cache
def _agent_name() -> str:
    return default_agent_name(getpass.getuser(), socket.gethostname())


def default_agent_name(user: str, host: str) -> str:
    """``fastmon-agent-<user>-<short host name>``: unique per host, since the broker refuses a
    second connection under one client-id, and the same at every restart, since the durable
    subscriptions are kept under it. At most 100 characters (swf-monitor's instance_name), the
    host's part kept whole up to 45."""
    short_host = host.split(".")[0] or "localhost"
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"fastmon-agent-{user[:40]}-{short_host[:45]}")


def _testbed_config() -> str:
    return str(config_path(os.environ.get("SWF_TESTBED_CONFIG", "").strip() or None))


def _namespace() -> str | None:
    return namespace_origin()[0]


def namespace_origin() -> tuple[str | None, str]:
    """fastmon's namespace and where it came from (the start-up line says it): the site's
    NAMESPACE when it sets one (None too), else the testbed config's as TESTBED_NAMESPACE says.
    Raises TestbedConfigError when the config cannot give one and must."""
    if "NAMESPACE" in (getattr(settings, "FASTMON", {}) or {}):
        return fastmon_settings.NAMESPACE, "FASTMON NAMESPACE"
    return _from_testbed(fastmon_settings.TESTBED_CONFIG, fastmon_settings.TESTBED_NAMESPACE)


@cache
def _from_testbed(config: str, mode: str) -> tuple[str | None, str]:
    """Once per config and mode: ingest asks at every batch, the file is read at start."""
    if mode not in TESTBED_NAMESPACE_MODES:
        raise TestbedConfigError(
            f"TESTBED_NAMESPACE must be one of {', '.join(TESTBED_NAMESPACE_MODES)}, not {mode!r}"
        )
    path = Path(config).absolute()
    if mode == "ignore":
        return None, "no NAMESPACE set and the testbed config ignored (TESTBED_NAMESPACE)"
    if mode == "optional" and not path.exists():
        return None, f"no NAMESPACE set and no testbed config at {path}"
    return read_namespace(path), f"testbed config {path}"


# The testbed's detector map (docs/content.md): the simulator writes it, DETECTORS defaults to it.
TESTBED_DETECTORS: list[dict[str, Any]] = [
    {"name": "SVT", "sources": [100, 131], "channels": 4096},
    {"name": "MPGD", "sources": [200, 215], "channels": 2048},
    {"name": "BEMC", "sources": [300, 323], "channels": 512},
    {"name": "dRICH", "sources": [400, 447], "channels": 1024},
    {"name": "ZDC", "sources": [900, 901], "channels": 64},
]

# A callable default is evaluated at each access (environment fallbacks).
DEFAULTS: dict[str, Any | Callable[[], Any]] = {
    # Testbed namespace fastmon serves. Messages naming another namespace are dropped;
    # messages without a namespace are always processed. None accepts every namespace. Not
    # set: the testbed config's [testbed] namespace, as TESTBED_NAMESPACE says.
    "NAMESPACE": _namespace,
    # The testbed config, found as the testbed's agents find it: SWF_TESTBED_CONFIG (a bare
    # file name lies in workflows/), else workflows/testbed.toml, from the working directory.
    "TESTBED_CONFIG": _testbed_config,
    # Whether the namespace must come from it when NAMESPACE is not set: "optional" (no such
    # file: every namespace, said at start), "required" (no file is a start-up error too), or
    # "ignore". A file that exists but gives no namespace is a start-up error unless ignored.
    "TESTBED_NAMESPACE": "optional",
    # fastmon's agent name: the STOMP client-id of run_fastmon's durable subscriptions (one
    # connection per client-id: a second run_fastmon under the same name exits, code 6),
    # `sender`/`processed_by` of what it sends, and its heartbeat's instance_name (at most 100
    # characters). Default fastmon-agent-<user>-<short host name>, the same at every restart.
    "AGENT_NAME": _agent_name,
    # TFs per STF when an announcement gives no tf_count (the testbed's runner sends none).
    "DEFAULT_TF_COUNT": 1000,
    # Bodies larger than this are dead-lettered unparsed.
    "MAX_BODY_BYTES": 1024 * 1024,
    # A dead letter keeps at most this much of its body, with the whole body's size and SHA-256:
    # a flood of huge bodies must not fill the database or make reading the letters expensive.
    # A letter kept in part cannot be replayed.
    "DEAD_LETTER_BODY_BYTES": 64 * 1024,
    # Free-form JSON a message carries and fastmon stores (an STF announcement's other fields,
    # per message type; a run's run_conditions; a slice's metrics) is kept up to this size:
    # past it, its entries are kept in order while they fit, and a "fastmon_cut" entry says
    # how many were left out (naming the first ten) and the whole value's size.
    "STORED_JSON_MAX_BYTES": 64 * 1024,
    # API lists (stf-files, slices, runs, and their CSV) serve each such value up to this size,
    # cut the same way; an item's own URL serves it as kept.
    "LISTED_JSON_MAX_BYTES": 2 * 1024,
    # The broker connection class (dotted path), as DRF names its classes.
    "TRANSPORT": "fastmon.transport.stomp.StompTransport",
    # Broker: a list of (host, port) pairs, tried in order.
    "BROKER_HOSTS": _broker_hosts,
    "BROKER_USER": lambda: _env("ACTIVEMQ_USER"),
    "BROKER_PASSWORD": lambda: _env("ACTIVEMQ_PASSWORD"),
    "BROKER_USE_SSL": lambda: _env_flag("ACTIVEMQ_USE_SSL"),
    "BROKER_SSL_CA_CERTS": lambda: _env("ACTIVEMQ_SSL_CA_CERTS"),
    "BROKER_SSL_CERT_FILE": lambda: _env("ACTIVEMQ_SSL_CERT_FILE"),
    "BROKER_SSL_KEY_FILE": lambda: _env("ACTIVEMQ_SSL_KEY_FILE"),
    # STOMP heart-beats (send, receive) in ms, as the testbed agents use.
    "BROKER_HEARTBEATS": (30000, 30000),
    # Where announcements come from, and where tf_file_registered goes. A /topic/ destination
    # gets a durable subscription (see DURABLE_SUBSCRIPTION); a /queue/ destination is shared
    # by every run_fastmon reading it, as competing consumers (README: "Scaling out").
    "SUBSCRIBE_DESTINATIONS": ["/topic/epictopic"],
    "PUBLISH_DESTINATION": "/topic/epictopic",
    # The fast-processing stage, observed (read besides SUBSCRIBE_DESTINATIONS): its slices,
    # its broadcasts to the workers, and a broker-side copy of the workers' results queue (a
    # queue has one reader, the fast-processing agent: fastmon never takes results from it).
    # The copy is the broker's: scripts/services.sh configures ActiveMQ Classic's composite
    # queue, docs/deployment.md an Artemis divert. [] turns the observation off.
    "FAST_PROCESSING_DESTINATIONS": [
        "/topic/panda.slices",
        "/topic/panda.workers",
        "/topic/fastmon.copy.panda.results.fastprocessing",
    ],
    # Topics: keep what is sent while fastmon is down, under client-id AGENT_NAME and this name.
    "DURABLE_SUBSCRIPTION": True,
    "SUBSCRIPTION_NAME": "fastmon",
    # Unacknowledged frames the broker may have in flight per subscription; bounds memory. At
    # least three batches: two in ingest (one committing, the next read and waiting) and one
    # arriving, or the broker waits for acks while ingest works.
    "PREFETCH": 4000,
    # A batch (one transaction) closes at this many frames or after this wait, whichever first.
    # The wait runs while ingest is idle: short, so ingest is not left waiting while the broker
    # refills, long enough that a light stream still comes in batches (one push to the live
    # pages per batch).
    "BATCH_SIZE": 1000,
    "BATCH_MAX_WAIT_MS": 20,
    # run_fastmon ingests in a child process of its own, so stomp.py's frame parsing and the
    # acks run beside ingest instead of taking turns with it on one interpreter (GIL); the
    # next batch is handed over and read while the last one commits. False: all in the
    # consumer's thread.
    "INGEST_PROCESS": True,
    # Retry delays after a transient failure: exponential from MIN to MAX, with jitter.
    "RETRY_MIN_S": 0.5,
    "RETRY_MAX_S": 30.0,
    # At start, how long to keep trying an unreachable broker before exiting (exit code 4).
    "STARTUP_CONNECT_TIMEOUT_S": 60.0,
    # On SIGTERM, SIGINT or SIGQUIT, how long to try to commit and ack the batch in hand.
    "STOP_TIMEOUT_S": 10.0,
    # Seconds between run_fastmon's one-line summaries.
    "SUMMARY_INTERVAL_S": 60.0,
    # How long run_fastmon keeps a healthy database connection before opening a new one.
    "DB_CONNECTION_MAX_AGE_S": 600.0,
    # Outbox: seconds between relay rounds, rows sent per round, wait for the broker's receipt.
    "OUTBOX_POLL_S": 0.2,
    "OUTBOX_BATCH_SIZE": 500,
    "OUTBOX_RECEIPT_TIMEOUT_S": 10.0,
    # Outbox destinations that fail (a subscriber's queue the broker refuses, swf-monitor down)
    # are retried with backoff up to this many seconds apart, without holding up the others.
    "OUTBOX_RETRY_MAX_S": 60.0,
    # Sent or given-up outbox rows are kept this long (the periodic task prunes older ones).
    "OUTBOX_KEEP_S": 7 * 86400.0,
    # Subscribers: requests arrive on CONTROL_DESTINATION (None: REST only) and are answered on
    # their reply-to; their destinations must start with one of these prefixes (a broker-made
    # temporary queue, as a requester's reply-to names it, is /remote-temp-queue/...). Every
    # destination a *_DESTINATION(S) setting names is fastmon's own: never a subscriber's or a
    # reply-to, whatever its prefix.
    "CONTROL_DESTINATION": "/queue/fastmon.control",
    "SUBSCRIBER_DESTINATION_PREFIXES": [
        "/queue/fastmon.",
        "/topic/fastmon.",
        "/remote-temp-queue/",
    ],
    # A control request's largest body (a larger one is dead-lettered unparsed and answered),
    # and the most values a subscriber's filter lists may hold together: each sample is matched
    # against every list, and every subscriber page shows them all.
    "CONTROL_MAX_BODY_BYTES": 64 * 1024,
    "SUBSCRIBER_MAX_FILTER_VALUES": 1000,
    # A subscriber's lease when its request names none: not renewed for this long, it is set
    # inactive (None: subscribers never lapse).
    "SUBSCRIBER_IDLE_EXPIRY_S": 24 * 3600.0,
    # A subscriber whose destination was refused this many times in a row is set inactive and
    # its undelivered messages are dropped (counted); a new subscribe request revives it. A
    # control reply is given up after as many.
    "SUBSCRIBER_MAX_FAILURES": 10,
    # Sampling: which announcements make an STF samplable, who samples, and how. WORKERS:
    # "celery" (the site's Celery workers take fastmon.sample_stfs tasks), "run_fastmon" (a
    # thread of run_fastmon samples, off the ack path, one chunk at a time), or "auto": Celery
    # when it is installed and the site sets CELERY_BROKER_URL (or runs tasks eagerly), else
    # run_fastmon. The in-process sampler looks for unsampled STFs every SAMPLING_POLL_S.
    "SAMPLING_ENABLED": True,
    "SAMPLE_ON": ["stf_ready"],
    "SAMPLING_WORKERS": "auto",
    "SAMPLING_POLL_S": 0.5,
    # STFs per task (or per round of the in-process sampler), and chunks waiting to be handed
    # to Celery before new ones are left to the periodic sweep (a sick Celery broker never
    # stalls ingest).
    "SAMPLING_TASK_CHUNK": 50,
    "SAMPLING_HANDOFF_QUEUE": 1000,
    "SAMPLING_MAX_ATTEMPTS": 3,
    "SAMPLING_SWEEP_AFTER_S": 300.0,
    "SAMPLING_SWEEP_LIMIT": 5000,
    # STF files are read only under these roots; elsewhere samples are metadata-only. A root is
    # a directory, or a URL prefix read remotely: root://HOST[:PORT]//ABS/PATH/ (XRootD, the
    # xrootd extra) or http(s)://HOST[:PORT]/PATH/ (davs:// is read as https://). A redirect
    # is followed only to a URL under a root: list a dCache door's pools too.
    "DATA_ROOTS": [],
    # Remote reads: the timeout of each socket operation, retries of a transient error (with
    # backoff from RETRY_MIN_S), concurrent reads per host, and the bytes one XRootD vector
    # read asks for (what a read holds in memory). HTTP sends a WLCG bearer token when one is
    # found (BEARER_TOKEN, BEARER_TOKEN_FILE, ...); XRootD takes its X.509 proxy from the
    # environment (X509_USER_PROXY), as every grid client does. The whole read of one STF,
    # retries included, ends by REMOTE_READ_DEADLINE_S however slowly a server answers.
    "REMOTE_READ_TIMEOUT_S": 30.0,
    "REMOTE_READ_RETRIES": 3,
    "REMOTE_READ_DEADLINE_S": 120.0,
    # The fraction of read STFs whose sampled ranges are read a second time, to catch storage
    # that returns other bytes (the TfChecksum check compares). 0 turns it off.
    "VERIFY_READ_FRACTION": 0.01,
    "REMOTE_MAX_CONCURRENT_PER_HOST": 4,
    "REMOTE_READ_BATCH_BYTES": 16 * 1024 * 1024,
    # STF size assumed for estimates when neither the file nor the announcement gives one.
    "ESTIMATED_STF_SIZE_BYTES": 2 * 1024**3,
    # Watch mode (sites without a data agent): run_fastmon also watches these DAQ exit buffers
    # and ingests each complete *.stf file there as an stf_ready would (`--watch DIR` adds one).
    "WATCH_DIRS": [],
    # A watched file is complete once its size and mtime have not changed for this long.
    "WATCH_SETTLE_S": 2.0,
    # Poll the directories instead of inotify: for network file systems written from other
    # hosts, where inotify sees nothing. Polling is also the fallback when inotify fails.
    "WATCH_POLLING": False,
    # API: how clients log in (swf-monitor's Session and Token), and the largest list sent
    # whole when a client gives no ?limit= (swf-monitor's fastmon-files are unpaginated).
    # Token first: an anonymous write then gets 401 with WWW-Authenticate, not a bare 403.
    "API_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "API_MAX_UNPAGINATED": 10000,
    # Live pages: the template they extend (it must define blocks "title" and "content"; set
    # swf-monitor's "base.html" to sit inside its layout), whether reading them and their
    # websocket needs a login, and the websocket's path below the site's script prefix (the
    # route fastmon.routing adds).
    "BASE_TEMPLATE": "fastmon/base.html",
    "PAGES_REQUIRE_LOGIN": False,
    "WEBSOCKET_PATH": "fastmon/ws/live/",
    # The site's SSO header, trusted on websocket handshakes from these proxy addresses only (a
    # site that logs users in per request from a header, as swf-monitor does with X-Remote-User
    # from localhost, has no session for the websocket to find). None: sessions and tokens only.
    # The address is the connection's as the ASGI server reports it: the proxy's with uvicorn's
    # --no-proxy-headers (deploy/supervisord/fastmon.conf), the browser's without.
    "WEBSOCKET_REMOTE_USER_HEADER": None,
    "WEBSOCKET_TRUSTED_PROXIES": ["127.0.0.1", "::1"],
    # Per websocket client: live events waiting to be sent (past this, newer ones are re-read
    # from the database once the client catches up: counted, never silent), how often an idle
    # client checks the database for events whose push was lost, and the most missed events
    # replayed on reconnect (older ones are skipped with a notice: reload the page).
    "LIVE_CLIENT_QUEUE": 1000,
    "LIVE_POLL_S": 5.0,
    "LIVE_REPLAY_MAX": 10000,
    # swf-monitor, for heartbeats and registering samples there (None: off).
    "SWF_MONITOR_URL": lambda: _env("SWF_MONITOR_URL"),
    "SWF_API_TOKEN": lambda: _env("SWF_API_TOKEN"),
    # Register every TF sample in swf-monitor's own /api/fastmon-files/ too (through the outbox,
    # with the testbed agent's POST body), so its FastMon pages and the fast-processing agent see
    # them. Needs SWF_MONITOR_URL.
    "SWF_MONITOR_FEED": False,
    # The timeout of every request to swf-monitor.
    "SWF_MONITOR_TIMEOUT_S": 10.0,
    # With the feed on, how often samples' status is compared with swf-monitor's (the
    # fast-processing agent moves them along there).
    "SWF_MONITOR_SYNC_S": 30.0,
    # Seconds between heartbeats to SWF_MONITOR_URL (the testbed agents' 60 s); failures back
    # off from RETRY_MIN_S up to this interval and never touch ingest.
    "HEARTBEAT_INTERVAL_S": 60.0,
    # Seconds between run_fastmon's ConsumerStatus rows, which health checks elsewhere read.
    "CONSUMER_STATUS_INTERVAL_S": 10.0,
    # Readiness: a consumer whose status is older than this is down; none at all is unhealthy
    # unless HEALTH_REQUIRE_CONSUMER is False (a site that runs no run_fastmon).
    "HEALTH_CONSUMER_STALE_S": 60.0,
    "HEALTH_REQUIRE_CONSUMER": True,
    # Readiness: the most outbox rows left unsent, and the most new dead letters per window.
    "HEALTH_MAX_OUTBOX_PENDING": 10000,
    "HEALTH_MAX_DEAD_LETTERS": 100,
    "HEALTH_DEAD_LETTER_WINDOW_S": 300.0,
    # Data quality (fastmon.quality). Checks run on what fastmon stores, per STF batch, per
    # tick, per content cycle and at end of run; each entry is {"class": dotted path, "name":
    # optional, and the class's parameters}. [] turns checks off.
    "CHECKS": [
        {"class": "fastmon.quality.builtin.StfSequence"},
        {"class": "fastmon.quality.builtin.EndRunTotal"},
        {"class": "fastmon.quality.builtin.StfAbsence"},
        {"class": "fastmon.quality.builtin.StfRateDrop"},
        {"class": "fastmon.quality.builtin.StfSizeOutlier"},
        {"class": "fastmon.quality.builtin.SampleLatency"},
        {"class": "fastmon.quality.builtin.TfChecksum"},
        {"class": "fastmon.quality.builtin.SliceFailures"},
        {"class": "fastmon.quality.builtin.DeadLetterRate"},
        # Content checks, each over every detector of DETECTORS (or one: "detector": "BEMC").
        {"class": "fastmon.quality.contentchecks.DeadChannels"},
        {"class": "fastmon.quality.contentchecks.HotChannels"},
        {"class": "fastmon.quality.contentchecks.MissingSources"},
        {"class": "fastmon.quality.contentchecks.ReferenceComparison"},
        {"class": "fastmon.quality.contentchecks.CorruptTFs"},
    ],
    # Seconds between run_fastmon's time-window evaluation (absence, rate, dead letters).
    "CHECK_INTERVAL_S": 5.0,
    # A tick judges the running runs with an STF or a state change in the last CHECK_IDLE_S, at
    # most CHECK_TICK_MAX_RUNS of them (the most recently active; the log says how many were
    # left out): a flood of runs that send nothing cannot load it. The others keep their verdicts.
    "CHECK_IDLE_S": 300.0,
    "CHECK_TICK_MAX_RUNS": 200,
    # Checks fire only while a run's state is one of these and its substate none of those, and
    # not within CHECK_GRACE_S of a state change (a transition is not a fault).
    "CHECK_RUNNING_STATES": ["run"],
    "CHECK_QUIET_SUBSTATES": ["standby", "paused", "not_ready"],
    "CHECK_GRACE_S": 10.0,
    # Alarms: raised when a check turns this bad or worse ("bad" or "medium"), cleared when it
    # recovers; published through the outbox as msg_type fastmon_alarm.
    "ALARM_LEVEL": "bad",
    "ALARM_DESTINATION": "/topic/fastmon.alarms",
    # A check's alarms of this many runs or more of one namespace, raised (or cleared) by one
    # evaluation, go out as one fastmon_alarm naming them all.
    "ALARM_COALESCE_RUNS": 5,
    # Content monitoring (fastmon.content): the sampled TFs decoded into histograms per run and
    # detector. CONTENT_ENABLED False leaves the envelope monitoring alone.
    "CONTENT_ENABLED": True,
    # The decoder: a class with ``boundaries`` and ``decode`` (fastmon.content.decoding).
    "CONTENT_DECODER": "fastmon.content.etf1.Etf1Decoder",
    # The detector map: [{"name", "sources": [first, last], "channels"}], source ranges apart
    # (`manage.py check` refuses overlaps). The default is the testbed's.
    "DETECTORS": TESTBED_DETECTORS,
    # A site's own histograms: dotted paths of callables given (decoded hits, detector map) of
    # a batch of TFs and returning {"<group>/<name>": boost_histogram.Histogram}.
    "CONTENT_TASKS": [],
    # Seconds between merges of the samples' partial histograms into their runs' (a cycle).
    "CONTENT_CYCLE_S": 5.0,
    # The moving window: the last N cycles' contributions, kept beside the run's whole.
    "CONTENT_WINDOW_CYCLES": 12,
    # An STF whose sampled bytes exceed this is sampled without content (memory stays bounded).
    "CONTENT_MAX_BYTES_PER_STF": 256 * 1024 * 1024,
}


class FastmonSettings:
    """Attribute access to the ``FASTMON`` dict, with defaults and environment fallbacks."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown fastmon setting {name!r}")
        user_settings = getattr(settings, "FASTMON", {}) or {}
        if name in user_settings:
            return user_settings[name]
        default = DEFAULTS[name]
        return default() if callable(default) else default


fastmon_settings = FastmonSettings()

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fastmon.conf import fastmon_settings
from fastmon.content.detectors import detector_map
from fastmon.simulator.faults import parse_fault
from fastmon.simulator.files import CONTENTS
from fastmon.simulator.player import SimulationOptions, Simulator
from fastmon.simulator.sending import (
    ReceiptBatches,
    byte_size,
    describe,
    progress_line,
    run_with_progress,
)
from fastmon.transport.base import (
    BrokerAuthFailed,
    BrokerError,
    BrokerRefused,
    validate_destination,
)
from fastmon.transport.stomp import StompTransport


class Command(BaseCommand):
    help = (
        "Play realistic testbed runs to the broker: run_imminent, start_run, STF announcements "
        "(stf_gen, and stf_ready as the data agent sends it) at a chosen rate with pauses, "
        "end_run; in the workflow runner's or the DAQ simulator's message shape; optionally "
        "writing the STF files. SIGINT/SIGTERM ends the open run with its end_run and exits 0. "
        "Exit codes: 1 bad options, 3 login refused, 4 broker unreachable or lost, "
        "6 broker refused a message."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        defaults = SimulationOptions
        parser.add_argument(
            "--runs",
            type=int,
            default=defaults.runs,
            help="runs to play; 0: until stopped (default %(default)s)",
        )
        parser.add_argument(
            "--stfs",
            type=int,
            default=defaults.stfs_per_run,
            help="STFs per run (default %(default)s)",
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=defaults.rate,
            help="STFs per second: 0.5 is the testbed, thousands a load test (default %(default)s)",
        )
        parser.add_argument(
            "--shape",
            choices=["runner", "daqsim"],
            default=defaults.shape,
            help="message shape: the workflow runner's or the standalone DAQ "
            "simulator's (default %(default)s)",
        )
        parser.add_argument(
            "--no-stf-ready",
            action="store_true",
            help="send stf_gen only (no data agent's stf_ready)",
        )
        parser.add_argument(
            "--namespace",
            default=None,
            help="testbed namespace in the bodies (default FASTMON NAMESPACE)",
        )
        parser.add_argument(
            "--destination",
            default=None,
            help="where to send (default the first SUBSCRIBE_DESTINATIONS)",
        )
        parser.add_argument(
            "--run",
            type=int,
            default=None,
            dest="first_run",
            help="first run number (default: from the clock, unique)",
        )
        parser.add_argument(
            "--pause-after",
            type=int,
            default=None,
            help="pause (standby) after every N STFs of a run",
        )
        parser.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="KIND@N[:VALUE]",
            help="inject a fault in every run, repeatable: gap@N, duplicate@N, "
            "stall@N:SECONDS, slow@N:FACTOR, oversize@N:FACTOR; and, into the ETF1 files "
            "written (--data-dir) from STF N on (@N-M: N to M), hot_channel@N:DET[:SOURCE"
            "[:CHANNEL]], dead_channel@N:DET[:SOURCE[:CHANNEL]], dead_source@N:DET[:SOURCE], "
            "gain@N:DET:FACTOR, noise@N:DET:RATE, corrupt@N[:FRACTION]",
        )
        parser.add_argument(
            "--pause-for",
            type=float,
            default=defaults.pause_for,
            help="seconds each pause lasts (default %(default)s)",
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="write each STF file under this directory (in FASTMON "
            "DATA_ROOTS for fastmon to read them)",
        )
        parser.add_argument(
            "--url-prefix",
            default=None,
            help="announce the files written under --data-dir with this URL prefix (e.g. "
            "root://door:1094//data/ or https://dav/data/, a server of that directory) "
            "instead of file:// URLs",
        )
        parser.add_argument(
            "--stf-size",
            type=byte_size,
            default=defaults.stf_size,
            help="STF size in bytes, or with K, M, G (default 64M); an ETF1 file comes near "
            "it, and its real size is announced",
        )
        parser.add_argument(
            "--content",
            choices=CONTENTS,
            default=defaults.content,
            help="what the files hold: ETF1 (TFs of realistic hits over the FASTMON DETECTORS "
            "map, with their index) or pseudo-random bytes (default %(default)s)",
        )
        parser.add_argument(
            "--sparse",
            action="store_true",
            help="write sparse files (zeros, no disk used), whatever --content says",
        )
        parser.add_argument(
            "--tf-count",
            type=int,
            default=None,
            help="TFs per STF: an ETF1 file has this many (default 1000), and stf_ready "
            "announces it (without it and without offsets, none is announced and fastmon "
            "assumes its DEFAULT_TF_COUNT)",
        )
        parser.add_argument(
            "--no-tf-offsets",
            action="store_true",
            help="leave the ETF1 files' TF offsets (tf_offsets, and the tf_count they make) "
            "out of stf_ready",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=defaults.seed,
            help="seed of the files' content (default %(default)s)",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="messages per broker receipt (default %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        destination = options["destination"] or fastmon_settings.SUBSCRIBE_DESTINATIONS[0]
        namespace = options["namespace"] or fastmon_settings.NAMESPACE
        try:
            validate_destination(destination)
            if options["batch"] < 1:
                raise ValueError("batch must be at least 1")
            simulation = SimulationOptions(
                runs=options["runs"] or None, stfs_per_run=options["stfs"], rate=options["rate"],
                shape=options["shape"], namespace=namespace, destination=destination,
                stf_ready=not options["no_stf_ready"], data_dir=options["data_dir"],
                url_prefix=options["url_prefix"],
                stf_size=options["stf_size"], sparse=options["sparse"],
                content=options["content"], tf_offsets=not options["no_tf_offsets"],
                detectors=detector_map() if options["data_dir"] else None,
                tf_count=options["tf_count"], pause_after=options["pause_after"],
                pause_for=options["pause_for"], first_run=options["first_run"],
                seed=options["seed"],
                faults=tuple(parse_fault(text, detector_map()) for text in options["fault"]),
            )  # fmt: skip
        except ValueError as exc:
            raise CommandError(str(exc)) from None

        transport = StompTransport()
        try:
            transport.connect()
        except BrokerAuthFailed as exc:
            raise CommandError(str(exc), returncode=3) from None
        except BrokerError as exc:
            raise CommandError(str(exc), returncode=4) from None
        sender = ReceiptBatches(transport, options["batch"])
        simulator = Simulator(simulation, sender.send, sender.flush)
        self.stdout.write(describe(simulation, transport))
        try:
            final = run_with_progress(simulator, self.stdout)
        except BrokerRefused as exc:
            raise CommandError(str(exc), returncode=6) from None
        except BrokerError as exc:
            raise CommandError(str(exc), returncode=4) from None
        finally:
            transport.disconnect()
        ending = "stopped" if simulator.stopping else "done"
        self.stdout.write(f"fastmon_simulate {ending}: {progress_line(final, simulation.runs)}")

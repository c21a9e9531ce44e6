"""The seed's integration loop with flowengine's names: OPC UA readings -> features -> defect
probability -> an alert when it is above the threshold.

    flowengine simulate --rate 10 &      # the simulated line on opc.tcp://127.0.0.1:4840
    python examples/integration_example_connectors.py --seconds 60

The loop is the seed document's, with ``DefectPredictionEngine`` and a ``FeatureEngineer`` from
``flowengine.inference``: the same code as the ``features`` and ``predict`` nodes of
flows/line3.yaml, with the model that flow uses (configs/inference_config.yaml names it). The
first prediction comes once the first 10-second window has ended. Exits 1 with a message when
the server cannot be reached or stops sending.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from flowengine.connectors import OPCUAConnector
from flowengine.inference import DefectPredictionEngine

HERE = Path(__file__).resolve().parent
#: The simulator's node ids, named as the model's features are (furnace_temp_mean, ...).
NODES = {
    "ns=2;i=1001": "furnace_temp",
    "ns=2;i=1002": "roll_force",
    "ns=2;i=1003": "cooling_water_flow",
    "ns=2;i=1004": "strip_speed",
    "ns=2;i=1005": "cooling_water_temp",
    "ns=2;i=1006": "strip_thickness",
}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--opcua",
        default=os.environ.get("FLOWENGINE_OPCUA", "127.0.0.1:4840"),
        help="HOST:PORT of the OPC UA server (env FLOWENGINE_OPCUA; default %(default)s)",
    )
    parser.add_argument(
        "--config",
        default=str(HERE / "configs" / "inference_config.yaml"),
        help="inference config YAML (default: configs/inference_config.yaml beside this file)",
    )
    parser.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    parser.add_argument("--threshold", type=float, help="alert threshold (default: the config's)")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds to wait to connect")
    return parser.parse_args(argv)


def send_alert(predictions: dict[str, Any]) -> None:
    """Where a plant would page someone; here a line on the console."""
    print(
        f"ALERT {predictions['timestamp']:%H:%M:%S}: defect probability "
        f"{predictions['defect_probability']:.2f}; top: {predictions.get('top_features') or '-'}",
        flush=True,
    )


def show(predictions: dict[str, Any], readings: int) -> None:
    if predictions["rows"] == 0:
        print(f"{readings} readings in, waiting for the first window to end", flush=True)
        return
    print(
        f"{predictions['timestamp']:%H:%M:%S} defect_probability "
        f"{predictions['defect_probability']:.3f} ({predictions['model_version']})",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Long because it is the seed's loop with its set-up and its end, in reading order."""
    args = arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # ours say it in the seed's words
    url = f"opc.tcp://{args.opcua}"
    config = {
        "server_url": url,
        "nodes": NODES,
        "mode": "subscription",  # every value the server writes, once (polling samples them)
        "sampling_interval": 0.1,
        "queue_size": 100,
        "timeout": args.timeout,
    }

    # Set up data collection
    connector = OPCUAConnector(config)
    if not connector.connect():
        print(
            f"error: no OPC UA server at {url}; start one with `flowengine simulate` "
            "(or point --opcua / FLOWENGINE_OPCUA at yours)",
            file=sys.stderr,
        )
        return 1
    print(f"connected to {url} ({len(NODES)} nodes)", flush=True)

    # Set up inference
    engine = DefectPredictionEngine(args.config)
    feature_engineer = engine.feature_engineer()
    threshold = engine.threshold if args.threshold is None else args.threshold
    polling_interval = engine.polling_interval
    print(f"model {engine.version} from {engine.model_path}; alert above {threshold:g}")

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    silent_limit = max(10.0, 5 * polling_interval)
    last_data, readings, scored, alerts, code = time.monotonic(), 0, 0, 0, 0
    try:
        # Real-time inference loop
        while deadline is None or time.monotonic() < deadline:
            # Collect data
            sensor_data = connector.read_data()

            if sensor_data is not None:
                last_data, readings = time.monotonic(), readings + len(sensor_data)
                # Apply feature engineering
                features = feature_engineer.transform(sensor_data)

                # Run prediction
                predictions = engine.predict(features)
                show(predictions, readings)
                scored += predictions["rows"]

                # Handle results (NaN, before the first window, is above no threshold)
                if predictions["defect_probability"] > threshold:
                    alerts += 1
                    send_alert(predictions)
            elif time.monotonic() - last_data > silent_limit:
                print(f"error: no data from {url} for {silent_limit:g} s", file=sys.stderr)
                code = 1
                break

            time.sleep(polling_interval)
    except KeyboardInterrupt:
        pass
    finally:
        connector.disconnect()
    print(f"done: {readings} readings, {scored} windows scored, {alerts} alerts")
    return code


if __name__ == "__main__":
    sys.exit(main())

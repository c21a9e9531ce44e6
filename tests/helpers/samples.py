"""A sample flow file with comments, as an editor user would have it."""

SAMPLE = """\
# Line 3 hot-strip mill: simulated sensors -> derived columns -> threshold -> debug + archive.
# Runs with no servers at all: `flowengine run flows/line3.yaml`.
version: 1
name: Line 3 (simulated)
description: Furnace temperature watch on the simulated hot-strip line.

settings:
  queue_size: 8
  drain_timeout: 15

nodes:
  plc:
    type: simulate
    name: Line 3 PLC (simulated)
    rate: 10            # samples per second per sensor
    seed: 3
    defect_interval: 120  # a defect episode every two minutes, for the demo
    wires: [furnace, archive]

  furnace:
    type: filter
    name: Furnace temperature only
    query: sensor == 'furnace_temp'
    wires: [deviation]

  deviation:
    type: compute
    name: Deviation from setpoint
    columns:
      setpoint: "1200.0"
      deviation: value - setpoint
      abs_deviation: abs(deviation)
    wires: [too_far]

  too_far:
    type: filter
    name: Beyond 25 C
    query: abs_deviation > ${LINE3_LIMIT:-25}
    wires: [console, alerts]

  console:
    type: debug
    name: Show alerts
    rows: 3

  alerts:
    type: file
    name: Alerts file
    path: ../out/line3-alerts.jsonl
    rotate_bytes: 10000000

  archive:
    type: file
    name: Raw archive
    path: ../out/line3-raw.csv
    rotate_bytes: 50000000

layout:
  plc: {x: 80, y: 160}
  furnace: {x: 300, y: 100}
  deviation: {x: 520, y: 100}
  too_far: {x: 740, y: 100}
  console: {x: 960, y: 60}
  alerts: {x: 960, y: 140}
  archive: {x: 300, y: 240}
"""

"""Reads the scalars back out of TensorBoard event files (TFRecord frames of Event protos)."""

import os
import struct

from tensorboardX.proto import event_pb2


def read_scalars(directory) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in the event files under ``directory``."""
  scalars = []
  for name in sorted(os.listdir(directory)):
    with open(os.path.join(directory, name), "rb") as f:
      data = f.read()
    position = 0
    while position < len(data):
      (length,) = struct.unpack("<Q", data[position:position + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[position + 12:position + 12 + length])
      position += 12 + length + 4      # length, its CRC, the record, its CRC
      scalars += [(event.step, value.tag, value.simple_value) for value in event.summary.value]
  return scalars

"""A minimal TensorBoard event-file writer for scalars (no TensorFlow/tensorboard needed).

An event file is a sequence of TFRecords (length, masked crc32c of the length, payload,
masked crc32c of the payload), each payload an ``Event`` protocol buffer. We encode the
few fields scalars need by hand: Event{wall_time=1, step=2, file_version=3, summary=5},
Summary{value=1}, Summary.Value{tag=1, simple_value=2}.
"""

from __future__ import annotations

import os
import socket
import struct
import time


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum TFRecords use."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
  out = bytearray()
  value &= (1 << 64) - 1
  while True:
    bits = value & 0x7F
    value >>= 7
    if value:
      out.append(bits | 0x80)
    else:
      out.append(bits)
      return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
  return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _event(step: int, *, file_version: str = "", scalars: dict[str, float] = None) -> bytes:
  event = _varint(1 << 3 | 1) + struct.pack("<d", time.time())
  event += _varint(2 << 3 | 0) + _varint(step)
  if file_version:
    event += _length_delimited(3, file_version.encode())
  if scalars:
    summary = b"".join(
        _length_delimited(1, _length_delimited(1, tag.encode())
                          + _varint(2 << 3 | 5) + struct.pack("<f", value))
        for tag, value in scalars.items())
    event += _length_delimited(5, summary)
  return event


def _record(payload: bytes) -> bytes:
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", _masked_crc(length)) + payload
          + struct.pack("<I", _masked_crc(payload)))


class EventFileWriter:
  """Appends scalar summaries to ``logdir/events.out.tfevents.<time>.<host>``."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, "ab")
    self._file.write(_record(_event(0, file_version="brain.Event:2")))

  def scalars(self, step: int, values: dict[str, float]) -> None:
    self._file.write(_record(_event(step, scalars=values)))
    self._file.flush()

  def close(self) -> None:
    self._file.close()


def read_scalars(path: str) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in an event file written by ``EventFileWriter``.

  Checks both CRCs of every record; for tests and quick inspection.
  """
  out = []
  with open(path, "rb") as f:
    data = f.read()
  offset = 0
  while offset < len(data):
    length_bytes = data[offset:offset + 8]
    (length,) = struct.unpack("<Q", length_bytes)
    (length_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
    payload = data[offset + 12:offset + 12 + length]
    (payload_crc,) = struct.unpack("<I", data[offset + 12 + length:offset + 16 + length])
    if length_crc != _masked_crc(length_bytes) or payload_crc != _masked_crc(payload):
      raise ValueError(f"{path}: corrupt record at byte {offset}")
    out.extend(_parse_scalars(payload))
    offset += 16 + length
  return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
  value = shift = 0
  while True:
    byte = data[pos]
    value |= (byte & 0x7F) << shift
    pos += 1
    shift += 7
    if not byte & 0x80:
      return value, pos


def _fields(data: bytes):
  """(field number, wire type, value) of a protobuf message."""
  pos = 0
  while pos < len(data):
    key, pos = _read_varint(data, pos)
    field, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _read_varint(data, pos)
    elif wire == 1:
      value, pos = data[pos:pos + 8], pos + 8
    elif wire == 5:
      value, pos = data[pos:pos + 4], pos + 4
    elif wire == 2:
      size, pos = _read_varint(data, pos)
      value, pos = data[pos:pos + size], pos + size
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    yield field, wire, value


def _parse_scalars(event: bytes) -> list[tuple[int, str, float]]:
  step, scalars = 0, []
  for field, _, value in _fields(event):
    if field == 2:
      step = value
    elif field == 5:
      for _, _, summary_value in _fields(value):
        parts = {f: v for f, _, v in _fields(summary_value)}
        if 2 in parts:
          scalars.append((parts[1].decode(), struct.unpack("<f", parts[2])[0]))
  return [(step, tag, value) for tag, value in scalars]

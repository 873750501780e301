"""Random streams owned by the run (docs/ARCHITECTURE.md, "Randomness").

A run's numbers depend on its config and seed and on nothing else: not on the other runs
of its batched group or their order, the thread count, how many evaluation passes ran,
or a resume. So no draw of a run comes from torch's global generator. Every draw takes
a :class:`Stream` derived from the run's seed and the draw's purpose, as JAX splits its
explicit keys per use:

- **Keys.** A stream is a 64-bit key. The run's root key is BLAKE2b-64 of
  ``("regbench.run", seed)``; a child's key is BLAKE2b-64 of ``(parent key, name)``, so
  ``root.child("layer", "blocks.0.3")`` names the masks of one layer. Keys are derived by
  name, never by order: adding a purpose shifts no other stream.
- **Counters.** A draw that repeats during training (a dropout mask, a mixup pairing)
  reseeds a generator from ``(key, counter)`` at every draw: BLAKE2b-64 of the key and
  the counter's integers. The counter is the run's :class:`Clock`, set by whoever drives
  the run: ``(TRAIN, step)`` before each optimizer step, ``(MC, split, epoch, batch,
  sample)`` for Monte-Carlo inference, ``(DIAG, epoch, batch)`` for the diagnostics'
  train-mode passes. What a layer draws at step t is a function of (seed, layer, t): it
  does not depend on how many draws came before, so evaluation passes, diagnostics and a
  resume cannot shift it, and a batched group draws each model's masks from that model's
  own streams with the same calls as one by one (bitwise the same masks).
- **Generators.** Counter draws use one ``torch.Generator`` per device and thread,
  reseeded at each draw (reseeding the CPU's Mersenne Twister costs about a microsecond;
  a CUDA generator's seed is host state read at kernel launch, so the scheme is the same
  on a GPU, with its own bits). One-off sequences (the data split, label noise) take a
  fresh generator seeded from the key; host-side draws (mixup's Beta coefficient, a
  block's batch-mode drop) a ``random.Random``. torch's CPU generator keeps only the low
  32 bits of a seed, so of n counter draws in a run some two share their bits with
  probability about n^2 / 2^33 (0.4 for 60,000: three layers over 20,000 steps): a mask
  repeated once, harmless to training but not strictly independent. CUDA's Philox
  generator keeps all 64 bits.

Unbound objects (a layer built outside a run, as in a unit test) draw from torch's global
generator, as torch's own layers do; :func:`bind` binds every stochastic part of a run.
"""

from __future__ import annotations

import hashlib
import random
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

#: the first entry of a counter: which pass of the run draws
TRAIN, MC, DIAG = 0, 1, 2
#: MC inference's split codes (the second entry of an MC counter)
SPLITS = {"val": 0, "test": 1}

_PERSON = b"regbench.v1"  # BLAKE2b personalisation: these keys are regbench's alone
_INTS: dict[int, struct.Struct] = {}


def _digest(data: bytes) -> int:
    h = hashlib.blake2b(data, digest_size=8, person=_PERSON)
    return int.from_bytes(h.digest(), "little")


def _ints(values: tuple[int, ...]) -> bytes:
    fmt = _INTS.get(len(values))
    if fmt is None:
        fmt = _INTS[len(values)] = struct.Struct(f"<{len(values)}q")
    return fmt.pack(*values)


class Stream:
    """A named random stream: an immutable 64-bit key (see the module docstring)."""

    __slots__ = ("key", "_prefix", "_counted")

    def __init__(self, key: int) -> None:
        self.key = int(key) & 0xFFFF_FFFF_FFFF_FFFF
        self._prefix = self.key.to_bytes(8, "little")
        # the hash state after (key, counter tag): a draw only adds its counter (~2x faster)
        self._counted = hashlib.blake2b(self._prefix + b"\2", digest_size=8, person=_PERSON)

    @classmethod
    def of_run(cls, seed: int) -> Stream:
        """The root stream of the run with ``seed``."""
        return cls(_digest(b"regbench.run\0" + _ints((int(seed),))))

    def child(self, *names: str | int) -> Stream:
        """The stream of a purpose below this one, e.g. ``child("data", "split")``."""
        key = self
        for name in names:
            key = Stream(_digest(key._prefix + b"\1" + str(name).encode()))
        return key

    def seed(self, *counter: int) -> int:
        """The 64-bit seed of this stream's draw at ``counter`` (the key itself for ())."""
        if not counter:
            return self.key
        h = self._counted.copy()
        h.update(_ints(counter))
        return int.from_bytes(h.digest(), "little")

    def generator(self, device: torch.device | str, *counter: int) -> torch.Generator:
        """The thread's generator for ``device``, reseeded for the draw at ``counter``;
        use it at once (the next draw of any stream reseeds it)."""
        if not isinstance(device, torch.device):
            device = torch.device(device)
        return _generator(device).manual_seed(self.seed(*counter))

    def fresh(self, device: torch.device | str = "cpu") -> torch.Generator:
        """A generator of its own seeded from the key: a one-off sequence of draws."""
        return torch.Generator(device=device).manual_seed(self.key)

    def random(self, *counter: int) -> random.Random:
        """A host-side ``random.Random`` for the draw at ``counter``."""
        return random.Random(self.seed(*counter))

    def __repr__(self) -> str:
        return f"Stream({self.key:#018x})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __reduce__(self):
        return Stream, (self.key,)

    def __deepcopy__(self, memo) -> Stream:
        return self  # immutable


_local = threading.local()


def _generator(device: torch.device) -> torch.Generator:
    cache = _local.__dict__.setdefault("generators", {})
    g = cache.get(device)
    if g is None:
        g = cache[device] = torch.Generator(device=device)
    return g


class Clock:
    """The counter a run's repeated draws are keyed by, set by whoever drives the run (the
    Lightning module, a batched group's loop, the diagnostics). A copy of a model (the
    diagnostics' train-mode copy) keeps reading the run's clock."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now: tuple[int, ...] = (TRAIN, 0)

    def __deepcopy__(self, memo) -> Clock:
        return self

    @contextmanager
    def at(self, *counter: int) -> Iterator[None]:
        before, self.now = self.now, tuple(counter)
        try:
            yield
        finally:
            self.now = before


class Drawn:
    """A part of a run that draws random numbers: a stochastic layer or a batch transform.
    :func:`bind` gives it its stream and the run's clock; its draws then come from
    :meth:`generator` (or :meth:`host`), keyed by the clock's counter."""

    stream: Stream | None = None
    clock: Clock | None = None

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The generator of this draw; None (torch's global one) when unbound."""
        if self.stream is None:
            return None
        return self.stream.generator(device, *self.clock.now)

    def host(self) -> random.Random:
        """A host-side ``random.Random`` for this draw (unbound: seeded from torch's
        global generator, so ``torch.manual_seed`` fixes it as it fixes the rest)."""
        if self.stream is None:
            return random.Random(int(torch.randint(0, 2**62, ())))
        return self.stream.random(*self.clock.now)


def bind(obj: object, stream: Stream, clock: Clock) -> None:
    """Give ``obj`` (if it draws) its stream and the run's clock."""
    if isinstance(obj, Drawn):
        obj.stream, obj.clock = stream, clock


def bind_model(model: nn.Module, stream: Stream, clock: Clock) -> None:
    """Every stochastic layer of ``model`` its own stream, keyed by its name in the model
    (``blocks.0.3``): the same layer of the same config draws the same masks in every
    execution of the run."""
    for name, m in model.named_modules():
        bind(m, stream.child(name), clock)


def clock_of(model: nn.Module) -> Clock | None:
    """The clock the stochastic layers of ``model`` read (None if none is bound)."""
    for m in model.modules():
        clock = getattr(m, "clock", None)
        if isinstance(clock, Clock):
            return clock
    return None


@contextmanager
def seeded(stream: Stream) -> Iterator[None]:
    """Inside, torch's global CPU generator is seeded from ``stream``; on exit it is put
    back as it was. For code that draws from it and takes no generator (a model's
    construction: ``nn.Linear`` initialises itself), so the run's draws come from its
    stream and the global generator is never consumed."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(stream.key)
        yield

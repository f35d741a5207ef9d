"""Data-parallel evaluation: which process of an ``accelerate launch`` / ``torchrun`` group we are.

:func:`~lens_odesteer.evaluation.evaluate` calls :func:`current_shard`. Started on its own it
gets ``Shard(rank=0, world=1)`` and nothing changes. Started by ``accelerate launch
--multi_gpu --num_processes N`` or ``torchrun --nproc_per_node N`` (both set ``RANK`` and
``WORLD_SIZE``), every process walks the same work list in the same order, and item ``i`` of it
(an activation cache, a fit, a candidate list, a scored part) belongs to rank ``i % N``. The
owner computes the item and writes it, sealed, into the shared output folder
(:class:`~lens_odesteer.evaluation.store.PartStore`); the other ranks wait for its seal and read
it. Rank 0 writes ``units.csv``, ``summary.csv``, ``paired.csv`` and ``results.json`` after a
barrier, from the same parts a single process would have computed, so the results are the same.

The process group used for barriers is a CPU (gloo) group: only barriers go through it, so it
works the same for CPU and GPU ranks. Placing each rank's model on its own GPU
(``cuda:LOCAL_RANK``) is the caller's job (:func:`local_device`).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from lens_odesteer.errors import InvalidParameterError

__all__ = ["Shard", "current_shard", "local_device"]

#: How long a barrier waits for the slowest rank (a rank may score for hours).
BARRIER_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Shard:
    """One process of a data-parallel evaluation.

    Attributes:
        rank: this process, ``0 <= rank < world``.
        world: number of processes.
        group: the process group barriers use (None when ``world == 1``).
    """

    rank: int = 0
    world: int = 1
    group: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, value, low in (("world", self.world, 1), ("rank", self.rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidParameterError(
                    f"Shard `{name}` must be an int >= {low}; got {value!r}."
                )
        if self.rank >= self.world:
            raise InvalidParameterError(
                f"Shard rank {self.rank} is out of range for {self.world} process(es); expected "
                f"0 <= rank < {self.world}."
            )

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the rank that writes the merged results)."""
        return self.rank == 0

    def owner(self, index: int) -> int:
        """The rank that computes work item ``index``."""
        return index % self.world

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op for a single process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameterError(
            f"Environment variable {name}={raw!r} is not an integer; it is set by "
            "`accelerate launch` / `torchrun`. Unset it to run a single process."
        ) from None


def current_shard() -> Shard:
    """The shard of this process, from ``RANK``/``WORLD_SIZE`` (set by the launchers).

    With ``WORLD_SIZE`` unset or 1: ``Shard(0, 1)``. Otherwise the default process group is
    initialised if needed (gloo, from the launcher's ``MASTER_ADDR``/``MASTER_PORT``), and a
    gloo group is made for barriers when the default one uses another backend (NCCL).

    Raises:
        InvalidParameterError: ``RANK``/``WORLD_SIZE`` are not integers, or ``RANK`` is missing
            or out of range while ``WORLD_SIZE > 1``.
    """
    world = _env_int("WORLD_SIZE")
    if world is None or world == 1:
        return Shard()
    rank = _env_int("RANK")
    if rank is None or world < 1:
        raise InvalidParameterError(
            f"WORLD_SIZE={world} but RANK={os.environ.get('RANK')!r}: start data-parallel runs "
            "with `accelerate launch --multi_gpu --num_processes N` or `torchrun "
            "--nproc_per_node N`, which set both."
        )
    Shard(rank, world)  # range check before any network setup
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    group = None
    if dist.get_backend() != "gloo":
        group = dist.new_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    return Shard(dist.get_rank(), dist.get_world_size(), group)


def local_device(device: str) -> str:
    """``device`` for this process: a bare ``"cuda"`` becomes ``cuda:LOCAL_RANK`` under a
    launcher (one GPU per rank); anything else is returned unchanged.

    Example:
        >>> local_device("cpu")
        'cpu'
    """
    if device == "cuda" and torch.cuda.is_available():
        local = _env_int("LOCAL_RANK")
        if local is not None:
            return f"cuda:{local}"
    return device

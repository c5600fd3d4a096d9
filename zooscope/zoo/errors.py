"""Exceptions raised by the model zoo."""

from __future__ import annotations


class ManifestError(ValueError):
    """A manifest failed validation.

    The message lists every problem found, one per line, as ``file:line:column: what was
    expected``, so that a user can fix the whole file in one go.

    Attributes
    ----------
    problems : list of str
        The individual ``file:line:column: message`` lines.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem(s) in manifest"
        super().__init__("\n".join([head, *problems]))


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not in the local cache and cannot be downloaded now.

    Attributes
    ----------
    model_uid : str
    searched : str
        The cache location(s) that were searched.
    fetch_command : str
        The command that downloads the weights on a connected machine.
    """

    def __init__(self, model_uid: str, searched: str, fetch_command: str, reason: str = "") -> None:
        self.model_uid = model_uid
        self.searched = searched
        self.fetch_command = fetch_command
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"weights for model {model_uid!r} are not cached and cannot be downloaded{why}.\n"
            f"  searched: {searched}\n"
            f"  on a machine with internet access run: {fetch_command}\n"
            f"  (then copy the cache over, or point TORCH_HOME / HF_HOME at it)"
        )


class ModelUnavailable(RuntimeError):
    """The manifest marks the model as unavailable (``available=false``)."""

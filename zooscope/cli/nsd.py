"""``zooscope nsd``: inspect an NSD tree, prepare a Benchmark file, write a synthetic NSD."""

from __future__ import annotations

from pathlib import Path

import typer

from zooscope.cli.validation import check_options
from zooscope.cli.vocabulary import VocabularyGroup

nsd_app = typer.Typer(
    cls=VocabularyGroup,
    help="Natural Scenes Dataset: inspect a tree, prepare a benchmark, write a synthetic NSD.",
    no_args_is_help=True,
)


@nsd_app.command("info")
def info(
    ctx: typer.Context,
    root: Path = typer.Argument(..., help="NSD root (holds nsddata/, nsddata_betas/, ...)."),
    beta_version: str = typer.Option("betas_fithrf_GLMdenoise_RR", help="Beta folder."),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Open and read every file listed (slow: decompresses each beta file).",
    ),
) -> None:
    """Show what is present per subject: sessions per beta format, ROI files, ncsnr.

    Without --verify a file counts as present when it exists; with --verify each one is read
    through, and unreadable (truncated, damaged) files are listed; exit code 1 if any.
    """
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.nsd.layout import BETA_FORMATS, NSDLayout
    from zooscope.nsd.verify import check_file

    layout = NSDLayout(root, beta_version=beta_version)
    checked, broken = 0, []

    def status(path: Path) -> str:
        nonlocal checked
        if not path.exists():
            return "MISSING"
        if not verify:
            return "ok"
        checked += 1
        problem = check_file(path)
        if problem is None:
            return "ok"
        broken.append(path)
        return f"UNREADABLE ({problem})"

    for label, path in (
        ("design", layout.expdesign),
        ("stim info", layout.stim_info),
        ("stimuli", layout.stimuli),
    ):
        typer.echo(f"{label:10s} {status(path)}  {path}")
    subjects = layout.subjects()
    if not subjects:
        typer.echo(f"no subject has betas under {layout.root / 'nsddata_betas' / 'ppdata'}")
        raise typer.Exit(1)
    rois = ("nsdgeneral", "streams", "prf-visualrois", "floc-faces", "floc-bodies", "floc-places",
            "floc-words")  # fmt: skip
    for subject in subjects:
        sessions = layout.sessions(subject)
        parts = [f"{fmt}: {_ranges(s)}" for fmt, s in sessions.items()]
        missing = [r for r in rois if not layout.roi(subject, r).exists()]
        missing += [
            f"floc_{d}tval"
            for d in ("faces", "bodies", "places", "words")
            if not layout.floc_tval(subject, d).exists()
        ]
        if not layout.ncsnr(subject).exists():
            missing.append("ncsnr")
        typer.echo(
            f"subj{subject:02d}  sessions {'; '.join(parts)}  "
            f"ROI files {'complete' if not missing else 'missing ' + ', '.join(missing)}"
        )
        if verify:
            files = [layout.betas(subject, s, fmt) for fmt in BETA_FORMATS for s in sessions[fmt]]
            files += [layout.roi(subject, r) for r in rois]
            files += [layout.floc_tval(subject, d) for d in ("faces", "bodies", "places", "words")]
            files += [layout.ncsnr(subject)]
            for path in files:
                state = status(path)
                if state.startswith("UNREADABLE"):
                    typer.echo(f"  {state}  {path}")
    if verify:
        if broken:
            typer.echo(
                f"error: {len(broken)} of {checked} files unreadable; fetch them again", err=True
            )
            raise typer.Exit(1)
        typer.echo(f"verified: all {checked} files present are readable")


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return f"{len(values)} ({', '.join(out)})"


@nsd_app.command("prepare")
def prepare_cmd(
    ctx: typer.Context,
    nsd_root: Path = typer.Option(..., "--nsd-root", help="NSD root folder."),
    out: Path = typer.Option(..., "--out", help="Benchmark file to write (.h5)."),
    subjects: list[int] = typer.Option([1, 2, 5, 7], "--subjects", "-s", help="Subjects (repeat)."),
    rois: list[str] = typer.Option(
        ["OTC", "EVC"], "--rois", "-r", help="Named ROI, expression or name=expression (repeat)."
    ),
    ncsnr_threshold: float = typer.Option(0.2, "--ncsnr-threshold", help="ncsnr threshold of OTC."),
    image_set: str = typer.Option(
        "shared1000",
        "--image-set",
        help="NSD image set: shared1000 (the images every subject saw).",
    ),
    beta_version: str = typer.Option("betas_fithrf_GLMdenoise_RR", help="Beta folder."),
    beta_format: str = typer.Option("auto", help="auto, hdf5 or nii.gz."),
) -> None:
    """Select voxels, z-score betas per session and write a Benchmark file."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    from zooscope.nsd.prepare import prepare

    bench = prepare(
        nsd_root,
        out,
        subjects=subjects,
        images=image_set,
        rois=rois,
        ncsnr_threshold=ncsnr_threshold,
        beta_version=beta_version,
        beta_format=beta_format,
    )
    with bench:
        typer.echo(
            f"wrote {bench.path}: {bench.n_units} units x {bench.n_images} images x {bench.n_reps} reps"
        )
        for label, idx in bench.groups().items():
            typer.echo(f"  {label}: {idx.size} units")
        typer.echo(f"content hash {bench.content_hash}")


@nsd_app.command("synth")
def synth(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Root of the synthetic tree to write."),
    subjects: list[int] = typer.Option([1, 2], "--subjects", "-s", help="Subjects (repeat)."),
    n_images: int = typer.Option(200, help="Shared images (each shown 3 times)."),
    n_sessions: int = typer.Option(3, help="Sessions per subject."),
    image_size: int = typer.Option(425, help="Stimulus side in pixels."),
    volume_shape: tuple[int, int, int] = typer.Option((10, 12, 8), help="Functional grid X Y Z."),
    seed: int = typer.Option(0, help="Random seed."),
    random_features: int = typer.Option(
        0,
        help="Use this many Gaussian random features instead of EfficientNet-Lite0 (no torch).",
    ),
    layer: str = typer.Option("blocks.5", help="EfficientNet-Lite0 layer for the responses."),
) -> None:
    """Write a synthetic NSD tree (exact NSD layout) with a planted truth beside it."""
    check_options(ctx)
    # lazy: `zooscope --help` stays fast
    import numpy as np

    from zooscope.nsd.synthetic import write_synthetic

    features = None
    if random_features:
        features = np.random.default_rng(seed).standard_normal((n_images, random_features))
    syn = write_synthetic(
        out,
        subjects=subjects,
        n_images=n_images,
        n_sessions=n_sessions,
        seed=seed,
        features=features,
        image_size=image_size,
        volume_shape=volume_shape,
        feature_layer=layer,
    )
    typer.echo(
        f"wrote synthetic NSD at {syn.root}; truth in {syn.truth_npz.name}, {syn.truth_json.name}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``nsd`` command group to ``app``."""
    app.add_typer(nsd_app, name="nsd")

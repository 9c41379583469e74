"""The ``alt-text`` command line: caption files, train and evaluate the model.

Every failure a user can cause (a bad path, a damaged checkpoint, a missing dataset) ends in a one-line message and
a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from . import local_describer
from .audit.command import audit
from .netsafe.images import ImageError, read_image_file


class _Failed(click.ClickException):
    """Exit status 1 after some inputs failed; their reasons were already printed."""

    def show(self, file=None):
        pass


def _model_errors() -> tuple[type[Exception], ...]:
    from model.checkpoint import CheckpointError
    from model.datasets import DatasetError
    from model.encoders import UnknownEncoderError
    from model.train import TrainingError

    return CheckpointError, DatasetError, TrainingError, UnknownEncoderError


def load_captioner(checkpoint: str | None, device: str | None = None):
    from model import Captioner
    from model.checkpoint import CheckpointError

    try:
        return Captioner.load(checkpoint, device=device)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None


def load_describer(checkpoint: str | None, beam_size: int = 3, device: str | None = None):
    """The describe pipeline with the ALT_TEXT_* settings (:mod:`server.local_describer`), or a one-line error."""
    try:
        return local_describer.load_describer(checkpoint, beam_size, device)
    except local_describer.DescriberUnavailable as e:
        raise click.ClickException(str(e)) from None


def emit_results(inputs: list[str], results: list[dict], as_json: bool) -> None:
    """Print one result per input in input order: the pipeline's ``alt`` (or why there is none), or with
    ``--json`` its whole result plus ``input`` (``{"input","error"}`` for a failure); exit non-zero when any
    input failed."""
    from .describe import reason_message

    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    failed = 0
    for r in results:
        if "error" in r:
            failed += 1
            click.echo(f"alt-text: {r['input']}: {r['error']}", err=True)
        elif not as_json:
            line = r["alt"] if r.get("alt") else f"({reason_message(r.get('reason'))})"
            click.echo(line if len(inputs) == 1 else f"{r['input']}: {line}")
    if failed:
        raise _Failed(f"{failed} of {len(inputs)} input(s) failed")


checkpoint_option = click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                                 help="Model checkpoint (default: the bundled model).")
beam_option = click.option("--beam-size", type=click.IntRange(1, 20), default=3, show_default=True,
                           help="Beam width; 1 is greedy decoding.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per input.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.version_option(package_name="alt-text")
def main(verbose: bool) -> None:
    """Describe images that were published without alt text."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@main.command("file")
@click.argument("paths", nargs=-1, required=True)
@checkpoint_option
@beam_option
@json_option
def file_command(paths: tuple[str, ...], checkpoint: str | None, beam_size: int, as_json: bool) -> None:
    """Describe local image files."""
    results = describe_inputs(list(paths), read_image_file, ImageError, checkpoint, beam_size)
    emit_results(list(paths), results, as_json)


def describe_inputs(inputs: list[str], load, error_type: type[Exception], checkpoint: str | None,
                    beam_size: int) -> list[dict]:
    """Load every input with ``load`` (failures become error entries), then describe the rest in one batch."""
    images, results = [], []
    for name in inputs:
        try:
            images.append(load(name))
            results.append({"input": name})
        except error_type as e:
            results.append({"input": name, "error": e.message})
    ok = [r for r in results if "error" not in r]
    if ok:
        for r, described in zip(ok, load_describer(checkpoint, beam_size).describe(images)):
            r.update(described)
    return results


@main.command("url")
@click.argument("urls", nargs=-1, required=True)
@click.option("--server", "server_url", default=None, metavar="URL",
              help="Ask a running alt-text service (e.g. http://127.0.0.1:8000) instead of the local model.")
@click.option("--api-key", default=None, envvar="ALT_TEXT_API_KEY", help="X-API-Key for --server.")
@checkpoint_option
@beam_option
@json_option
def url_command(urls, server_url, api_key, checkpoint, beam_size, as_json) -> None:
    """Describe images on the web, fetched safely (public addresses only, size and pixel limits, timeouts)."""
    if server_url:
        results = _ask_server(server_url, api_key, list(urls))
    else:
        from .netsafe.fetch import FetchError, fetch_image
        from .settings import Settings

        try:
            limits = Settings.from_env().fetch_limits()
        except (TypeError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        results = describe_inputs(list(urls), lambda u: fetch_image(u, limits)[0], FetchError, checkpoint,
                                  beam_size)
    emit_results(list(urls), results, as_json)


def _ask_server(server_url: str, api_key: str | None, urls: list[str]) -> list[dict]:
    from .client import ServiceClient, ServiceError

    try:
        answers = ServiceClient(server_url, api_key).describe([{"url": u} for u in urls])
    except ServiceError as e:
        raise click.ClickException(e.message) from None
    results = []
    for u, res in zip(urls, answers):
        if "error" in res:
            results.append({"input": u, "error": res["error"]["message"]})
        else:  # the service ran the same pipeline: show its result as the local path would
            results.append({"input": u, **{k: v for k, v in res.items() if k not in ("cached", "elapsed_ms")}})
    return results


def _train_options(fn):
    """One click option per TrainConfig field, so the CLI and the dataclass cannot drift apart."""
    from model.encoders import ENCODERS
    from model.train import TrainConfig

    skip = {"data", "out"}
    choices = {"encoder": list(ENCODERS), "decoder": ["transformer", "lstm"]}
    for f in reversed(fields(TrainConfig)):
        if f.name in skip:
            continue
        default = f.default
        name = "--" + f.name.replace("_", "-")
        kind = click.Choice(choices[f.name]) if f.name in choices else (
            {int: int, float: float, str: str}.get(type(default), str))
        fn = click.option(name, f.name, type=kind, default=default, show_default=True)(fn)
    return fn


def _scst_options(fn):
    """The SCST settings that cross-entropy training lacks, one option per SCSTConfig field, unset by default (so
    giving one without --scst is an error, not silently ignored)."""
    from model.scst import BASELINES, SCSTConfig
    from model.train import TrainConfig

    helps = {"init": "The cross-entropy checkpoint to fine-tune (a resumed run knows its own).",
             "samples": "Captions sampled per image.",
             "baseline": "Reward baseline: the mean reward of the image's other samples, or the greedy caption's.",
             "xe_weight": "Weight of a cross-entropy term on one reference caption per image.",
             "entropy_weight": "Weight of an entropy bonus on the sampled tokens.",
             "hallucination_penalty": "Reward taken off per COCO object a sample names that no reference names.",
             "tune_encoder_blocks": "Also fine-tune the encoder's last N blocks and head convolution "
                                    "(EfficientNet-Lite; the trunk's maps before them are cached)."}
    shared = {f.name for f in fields(TrainConfig)}
    for f in reversed(fields(SCSTConfig)):
        if f.name in shared:
            continue
        kind = click.Choice(BASELINES) if f.name == "baseline" else (
            click.Path(dir_okay=False) if f.name == "init" else {int: int, float: float}.get(type(f.default), str))
        default = f"; default {f.default}" if f.default != "" else ""
        fn = click.option("--" + f.name.replace("_", "-"), f.name, type=kind, default=None,
                          help=f"{helps.get(f.name, '')} [--scst only{default}]")(fn)
    return fn


def _given(ctx: click.Context, names) -> list[str]:
    """The options among ``names`` that the user set (on the command line or through the environment)."""
    return [n for n in names if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]


def _flags(names) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)


def _scst_config(ctx: click.Context, data, out, options: dict):
    """The SCSTConfig of a ``train --scst`` command: the options given, SCST's own defaults for the rest."""
    from model.scst import SCSTConfig
    from model.train import TrainConfig

    scst_fields = {f.name for f in fields(SCSTConfig)}
    not_here = [n for n in _given(ctx, [f.name for f in fields(TrainConfig)]) if n not in scst_fields]
    if not_here:
        raise click.UsageError(f"{_flags(not_here)}: not an SCST setting (the model and its vocabulary come from "
                               "--init)")
    given = {n: options[n] for n in _given(ctx, options) if n in scst_fields}
    if ctx.get_parameter_source("out") is not ParameterSource.DEFAULT:
        given["out"] = out
    return SCSTConfig(data=list(data), **given)


@main.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(file_okay=False),
              help="Dataset directory (Flickr8k, COCO, Karpathy or captions.txt layout); repeat for several.")
@click.option("--out", default="runs/default", show_default=True, type=click.Path(file_okay=False),
              help="Run directory: checkpoints, training state and log (runs/scst with --scst).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last saved step.")
@click.option("--scst", is_flag=True,
              help="Fine-tune --init with self-critical sequence training (CIDEr-D reward) instead of training "
                   "with cross-entropy. Unset options then take SCST's defaults (lr 2e-5, batch 32 images, "
                   "5 epochs, dropout 0); the architecture comes from --init.")
@click.option("--threads", type=click.IntRange(0, 256), default=0, show_default=True,
              help="CPU threads for torch (0: torch's default, all cores).")
@_scst_options
@_train_options
def train(data, out, resume, scst, threads, **options) -> None:
    """Train a captioner; the best checkpoint by dev CIDEr is OUT/best.safetensors."""
    ctx = click.get_current_context()
    if scst:
        from model.scst import train as run

        cfg = _scst_config(ctx, data, out, options)
    else:
        from model.scst import SCSTConfig
        from model.train import TrainConfig
        from model.train import train as run

        train_fields = {f.name for f in fields(TrainConfig)}
        scst_only = [f.name for f in fields(SCSTConfig) if f.name not in train_fields]
        if _given(ctx, scst_only):
            raise click.UsageError(f"{_flags(_given(ctx, scst_only))} only apply with --scst")
        cfg = TrainConfig(data=list(data), out=out, **{k: v for k, v in options.items() if k in train_fields})
    if threads:
        import torch

        torch.set_num_threads(threads)
    logging.getLogger().setLevel(logging.INFO)
    try:
        result = run(cfg, resume=resume)
    except _model_errors() as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; continue with the same command plus --resume (state in {cfg.out})")
    click.echo(json.dumps({k: v for k, v in result.items() if k != "samples"}))


@main.command()
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset directory.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "dev", "test"]))
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(dir_okay=False),
              help="Model checkpoint (default: the bundled model). Repeat it to evaluate an ensemble of the "
                   "checkpoints (same encoder and vocabulary; the decoders are averaged inside one beam search).")
@click.option("--combine", type=click.Choice(["mean", "geometric"]), default="mean", show_default=True,
              help="How an ensemble averages its decoders: mean of probabilities, or normalised geometric mean.")
@beam_option
@click.option("--limit", type=int, default=0, help="Evaluate only the first N images of the split.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report here.")
@click.option("--no-java", is_flag=True, help="Skip the Java-based PTB tokenizer and METEOR.")
def evaluate(data, split, checkpoints, combine, beam_size, limit, out, no_java) -> None:
    """Score captions on a dataset split: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, and CHAIR (hallucinated objects)."""
    from model import Captioner
    from model.datasets import load_split
    from model.evaluate import evaluate as run

    try:
        items = load_split(data, split)
    except _model_errors() as e:
        raise click.ClickException(str(e)) from None
    if limit:
        items = items[:limit]
    if not items:
        raise click.ClickException(f"{data}: the {split} split has no usable images")
    if out and not Path(out).resolve().parent.is_dir():
        raise click.ClickException(f"--out {out}: the directory does not exist")
    if len(checkpoints) > 1:
        try:
            captioner = Captioner.load(list(checkpoints), combine=combine)
        except _model_errors() as e:
            raise click.ClickException(str(e)) from None
    else:
        captioner = load_captioner(checkpoints[0] if checkpoints else None)
    report = run(captioner, items, beam_size=beam_size, use_java=False if no_java else None)
    report.update(dataset=str(Path(data).resolve()), split=split)
    if out:
        Path(out).write_text(json.dumps(report, indent=2))
    click.echo(json.dumps({k: v for k, v in report.items() if k != "captions"}, indent=2))


def _serve_options(fn):
    """One flag per Config setting (the table in docs/service.md), so the flags, the variables and the dataclass
    cannot drift apart; unset flags leave the ALT_TEXT_* variables and the defaults in force."""
    from .service.config import Config
    from .settings import Settings

    plural = {"api_keys": "--api-key", "cors_origins": "--cors-origin"}  # repeatable, one value each
    shared = {f.name for f in fields(Settings)}  # listed after the service's own (the model first)
    ordered = sorted(fields(Config), key=lambda f: f.name in shared)
    for f in reversed(ordered):
        if "help" not in f.metadata:
            continue  # not a deployment setting (test switches)
        name = plural.get(f.name, "--" + f.name.replace("_", "-"))
        default = f.default
        if isinstance(default, bool):
            fn = click.option(f"{name}/--no-{name[2:]}", f.name, default=None, help=f.metadata["help"])(fn)
        elif isinstance(default, tuple):
            fn = click.option(name, f.name, multiple=True, help=f.metadata["help"] + " (repeatable)")(fn)
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if f.name == "cache":
                kind = click.Choice(["sqlite", "redis", "none"])
            fn = click.option(name, f.name, type=kind, default=None, help=f.metadata["help"])(fn)
    return fn


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes; each loads its own model copy and batching worker.")
@click.option("--threads", default=64, show_default=True, type=click.IntRange(1, 256),
              help="Request threads per process for what does not wait for the model (cached and invalid "
                   "requests, refusals); requests waiting for the model use threads of their own (--backlog).")
@_serve_options
def serve(host, port, workers, threads, **options) -> None:
    """Run the HTTP service under gunicorn. Every setting can also come from ALT_TEXT_* variables."""
    from .service.config import Config
    from .service.gunicorn_app import ServeError, run

    options["api_keys"] = tuple(options["api_keys"]) or None
    options["cors_origins"] = tuple(options["cors_origins"]) or None
    try:
        cfg = Config.from_env(**options)
    except (TypeError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    try:
        run(cfg, host=host, port=port, workers=workers, threads=threads)
    except ServeError as e:
        raise click.ClickException(str(e)) from None


main.add_command(audit)


if __name__ == "__main__":
    sys.exit(main())

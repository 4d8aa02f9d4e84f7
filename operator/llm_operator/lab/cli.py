"""The ``llm-lab`` command line: the local cluster, the simulators, the benchmark and the demo.

Installed with the ``lab`` extra; the operator's and the gateway's images never carry it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click

from llm_operator import __version__

CACHE = Path(".cache")


def _trace(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    from llm_operator.lab.sim.trace import resolve

    path = resolve(value)
    if path is not None and not path.exists():
        raise click.BadParameter(f"no trace at {path}")
    return path


trace_option = click.option(
    "--trace",
    "trace_path",
    default=None,
    callback=_trace,
    help="Trace file (Azure CSV, CSV or JSONL), or 'synthetic'. Default: the Azure "
    "conversation trace at ../shared/data/traces/ when present, else synthetic.",
)
model_cache_option = click.option(
    "--model-cache/--no-model-cache",
    default=True,
    show_default=True,
    help="New replicas load from the model cache (90 s cold start) or download first (300 s).",
)
gpu_option = click.option(
    "--gpu", type=click.Choice(["h100", "a100"]), default="h100", show_default=True
)


@click.group()
@click.version_option(__version__, prog_name="llm-lab")
def main() -> None:
    """The lab: a local control plane, engine simulators, the benchmark and the demo."""


@main.command()
@click.option(
    "--compress",
    default=3.0,
    show_default=True,
    help="Time compression: trace, simulators, cold start and windows run this much "
    "faster; figures are reported in real time.",
)
@click.option("--minutes", default=15.0, show_default=True, help="Trace minutes to replay.")
@trace_option
@model_cache_option
@click.option("--out", type=click.Path(path_type=Path), default=CACHE / "demo", show_default=True)
def demo(
    compress: float, minutes: float, trace_path: Path | None, model_cache: bool, out: Path
) -> None:
    """Run the operator on a local control plane with simulated GPU nodes and a real trace."""
    from llm_operator.lab.demo import run_demo
    from llm_operator.lab.sim.model import cold_start_for

    result = run_demo(
        compress=compress,
        minutes=minutes,
        trace_path=trace_path,
        out_dir=out.resolve(),
        cold_start=cold_start_for(model_cache),
    )
    click.echo(
        f"demo finished in {result.elapsed:.0f}s: {len(result.ready)} LLMDeployments "
        f"Ready; timeline {result.timeline_png}"
    )


def _slo(_ctx: click.Context, _param: click.Parameter, value: str) -> Any:
    from llm_operator.lab.sim.scenarios import parse_slo

    try:
        return parse_slo(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@main.group()
def bench() -> None:
    """Benchmarks."""


def _progress() -> Any:
    """The benchmark's progress bar (rich is imported only by the commands that draw it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


@bench.command("autoscaling")
@trace_option
@click.option("--scale", "k", default=4, show_default=True, help="Repeat each request k times.")
@click.option(
    "--slo",
    default="ttft=0.5,itl=0.05",
    show_default=True,
    callback=_slo,
    help="Per-request SLO: TTFT (optionally growing with the prompt: ttft=0.5+0.2/1k) and "
    "mean inter-token latency, seconds.",
)
@gpu_option
@model_cache_option
@click.option("--cold-start", type=float, default=None, help="Seconds to a ready replica.")
@click.option("--policy", "only", multiple=True, help="Run only these policies (repeatable).")
@click.option("--workers", type=int, default=None, help="Processes (default: one per core).")
@click.option("--out", type=click.Path(path_type=Path), default=CACHE / "bench", show_default=True)
def bench_autoscaling(
    trace_path: Path | None,
    k: int,
    slo: Any,
    gpu: str,
    model_cache: bool,
    cold_start: float | None,
    only: tuple[str, ...],
    workers: int | None,
    out: Path,
) -> None:
    """Our policy against HPA, KEDA, KPA, APA, WVA, static and the oracle on a trace."""
    from llm_operator.lab.sim import scoreboard, trace
    from llm_operator.lab.sim.model import cold_start_for

    cold_start = cold_start if cold_start is not None else cold_start_for(model_cache)
    if trace_path is None:
        requests, name = trace.synthetic(seed=7), "synthetic"
    else:
        requests, name = trace.load(trace_path), trace_path.name
    requests = trace.scale(requests, k)
    unknown = set(only) - {"oracle", *scoreboard.OURS, *scoreboard.BASELINES}
    if unknown:
        raise click.BadParameter(f"unknown policy {', '.join(sorted(unknown))}")
    meta = {"trace": name, "scale": k, "requests": len(requests), "gpu": gpu}
    with _progress() as progress:
        task = progress.add_task("calibrating the oracle", total=None)
        ctx, results = scoreboard.run_benchmark(
            requests,
            gpu=gpu,
            slo=slo,
            cold_start=cold_start,
            workers=workers,
            only=set(only) or None,
            on_start=lambda n: progress.update(task, total=n, description="simulating"),
            on_done=lambda s, score: progress.update(
                task, advance=1, description=f"{s.label}: {score.attainment:.1%}"
            ),
        )
    paths = scoreboard.write(meta, ctx, results, out)
    click.echo(scoreboard.to_markdown(meta, ctx, results))
    for p in paths:
        click.echo(f"wrote {p}")


@bench.command("suite")
@click.option(
    "--scenario",
    "names",
    multiple=True,
    help="Run only these scenarios (repeatable); default: all (the Azure trace when present).",
)
@click.option("--seeds", default="1", show_default=True, help="Arrival seeds, comma-separated.")
@gpu_option
@model_cache_option
@click.option(
    "--max-replicas-factor",
    type=click.FloatRange(min=1.0),
    default=2.0,
    show_default=True,
    help="maxReplicas of every autoscaler, as a multiple of the scenario's peak need.",
)
@click.option("--workers", type=int, default=None, help="Processes (default: one per core).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=CACHE / "bench-suite", show_default=True
)
def bench_suite(
    names: tuple[str, ...],
    seeds: str,
    gpu: str,
    model_cache: bool,
    max_replicas_factor: float,
    workers: int | None,
    out: Path,
) -> None:
    """Every policy over every scenario (bursty, bursty-minutes, long-context, diurnal, waves,
    flash crowd, heavy tails, idle hours, and the Azure trace when present): a scoreboard each
    and a summary table."""
    from llm_operator.lab.sim import suite
    from llm_operator.lab.sim.model import cold_start_for
    from llm_operator.lab.sim.scenarios import scenarios
    from llm_operator.lab.sim.trace import resolve

    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError as e:
        raise click.BadParameter(f"expected integers like 1,2,3, got {seeds!r}") from e
    known = scenarios(resolve(None))
    unknown = set(names) - {s.name for s in known}
    if unknown:
        raise click.BadParameter(
            f"unknown scenario {', '.join(sorted(unknown))}; known: "
            + ", ".join(s.name for s in known)
        )
    chosen = [s for s in known if not names or s.name in names]
    with _progress() as progress:
        task = progress.add_task("starting", total=None)
        current = [""]

        def scenario(label: str) -> None:
            current[0] = label
            progress.reset(task, total=None, description=f"{label}: calibrating the oracle")

        suite.run_suite(
            chosen,
            out,
            seeds=seed_list,
            gpu=gpu,
            cold_start=cold_start_for(model_cache),
            max_factor=max_replicas_factor,
            workers=workers,
            on_scenario=scenario,
            on_start=lambda n: progress.update(task, total=n, description=current[0]),
            on_done=lambda s, score: progress.update(
                task, advance=1, description=f"{current[0]} {s.label}: {score.attainment:.1%}"
            ),
        )
    click.echo((out / "summary.md").read_text())
    click.echo(f"wrote {out}/summary.md, {out}/summary.json and one directory per scenario")


@main.group()
def sim() -> None:
    """Simulators."""


@sim.command("engine")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--engine", type=click.Choice(["vllm", "tgi"]), default="vllm", show_default=True)
@gpu_option
@click.option("--served-name", default="sim-model", show_default=True)
@click.option("--language", default="en", show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="Time compression factor.")
@click.option("--legacy-metric-names", is_flag=True, help="vLLM's older metric names.")
@click.option(
    "--max-num-seqs",
    type=click.IntRange(min=1),
    default=None,
    help="Sequences per batch, as vLLM's flag (default: the GPU model's).",
)
def sim_engine(
    host: str,
    port: int,
    engine: str,
    gpu: str,
    served_name: str,
    language: str,
    speed: float,
    legacy_metric_names: bool,
    max_num_seqs: int | None,
) -> None:
    """Run the engine simulator (OpenAI API, vLLM or TGI metric names)."""
    import asyncio
    import dataclasses

    from llm_operator.lab.sim.engine import EngineSim, serve
    from llm_operator.lab.sim.model import model_for

    model = model_for(gpu)
    if max_num_seqs is not None:
        model = dataclasses.replace(model, max_num_seqs=max_num_seqs)

    async def run() -> None:
        engine_sim = EngineSim(
            model=model,
            engine=engine,
            served_name=served_name,
            language=language,
            speed=speed,
            legacy_names=legacy_metric_names,
        )
        runner = await serve(engine_sim, host, port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())


@main.group()
def cluster() -> None:
    """The local control plane with simulated GPU nodes."""


@cluster.command("up")
@click.option("--nodes", default=2, show_default=True)
@click.option("--gpus-per-node", default=8, show_default=True)
@click.option(
    "--start-delay",
    default=5.0,
    show_default=True,
    help="Seconds before a pod turns Ready (the model's cold start).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=CACHE / "cluster",
    show_default=True,
)
def cluster_up(nodes: int, gpus_per_node: int, start_delay: float, workdir: Path) -> None:
    """Start the cluster and leave it running; writes .cache/kubeconfig."""
    from llm_operator.lab import localcluster as lc

    if lc.stop_from_state(workdir):
        click.echo("stopped a previous cluster in the same directory")
    shutil.rmtree(workdir, ignore_errors=True)
    c = lc.LocalCluster(
        bin_dir=lc.find_bin_dir(),
        workdir=workdir.resolve(),
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        start_delay_seconds=start_delay,
    )
    c.start()
    target = CACHE / "kubeconfig"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(c.kubeconfig, target)
    click.echo(
        f"cluster up: {c.server}, {nodes} nodes x {gpus_per_node} GPUs; logs in {workdir}/logs"
    )
    click.echo(f"  export KUBECONFIG={target.resolve()}")
    click.echo(f"  export PATH={c.bin_dir}:$PATH")


@cluster.command("down")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=CACHE / "cluster",
    show_default=True,
)
def cluster_down(workdir: Path) -> None:
    """Stop the cluster started by `cluster up` and remove its state."""
    from llm_operator.lab import localcluster as lc

    stopped = lc.stop_from_state(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    (CACHE / "kubeconfig").unlink(missing_ok=True)
    click.echo("stopped " + (", ".join(stopped) if stopped else "nothing (no cluster running)"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

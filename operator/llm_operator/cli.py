"""The ``llm-operator`` command line (click)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from llm_operator import __version__


@click.group()
@click.version_option(__version__, prog_name="llm-operator")
def main() -> None:
    """Deploy LLM inference servers on GPU nodes and autoscale them on latency and cost."""


@main.command()
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=Path("."),
    help="Repository root to write crds/ and the chart's crds/ under.",
)
@click.option("--check", is_flag=True, help="Fail if the committed CRD differs from the models.")
def crd(root: Path, check: bool) -> None:
    """Generate the LLMDeployment CRD from the API models."""
    from llm_operator.api import crd as gen

    if check:
        text = gen.render_yaml()
        stale = [p for p in gen.default_targets(root) if not p.exists() or p.read_text() != text]
        if stale:
            raise click.ClickException(
                "CRD out of date (run `make crds`): " + ", ".join(str(p) for p in stale)
            )
        click.echo("CRD up to date")
        return
    for path in gen.write(root):
        click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--config",
    "config_path",
    envvar="LLMOP_CONFIG",
    type=click.Path(dir_okay=False),
    help="Operator config YAML (GPU profiles, images, Prometheus URL).",
)
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="Out-of-cluster kubeconfig.")
@click.option("--namespace", "namespaces", multiple=True, help="Watch only these namespaces.")
@click.option(
    "--liveness",
    default="http://0.0.0.0:8081/healthz",
    show_default=True,
    help="Liveness endpoint URL ('' to disable).",
)
@click.option(
    "--peering",
    default=None,
    help="Peering name for running more than one replica (leader election).",
)
@click.option(
    "--metrics-port",
    default=8080,
    show_default=True,
    help="Port of the operator's own /metrics (0 to disable).",
)
@click.option("-v", "--verbose", is_flag=True)
def run(
    config_path: str | None,
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    liveness: str,
    peering: str | None,
    metrics_port: int,
    verbose: bool,
) -> None:
    """Run the operator."""
    from llm_operator.config import OperatorConfig
    from llm_operator.controller import operator
    from llm_operator.kube.client import Kube

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("kubernetes", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = OperatorConfig.load(config_path)
    kube = Kube.connect(kubeconfig, field_manager=config.field_manager)
    operator.run(
        config,
        kube,
        namespaces=list(namespaces),
        liveness=liveness or None,
        peering=peering,
        metrics_port=metrics_port or None,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The `gpulease` command line: policy, database, leases, and the services."""

from __future__ import annotations

import typer

from gpulease import cli_cluster, cli_db, cli_demand, cli_dev, cli_policy, cli_render, cli_serve, cli_services

app = typer.Typer(
    name="gpulease",
    help="Self-service Kubernetes namespaces on shared NVIDIA GPUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_policy.app, name="policy")
app.add_typer(cli_db.db_app, name="db")
app.add_typer(cli_db.leases_app, name="leases")
app.command("inventory")(cli_cluster.inventory)
app.command("demand")(cli_demand.demand)
app.command("render")(cli_render.render)
app.command("worker")(cli_services.worker)
app.command("beat")(cli_services.beat)
app.command("doctor")(cli_services.doctor)
app.command("serve")(cli_serve.serve)
app.command("socket")(cli_serve.socket)
app.command("dev")(cli_dev.dev)


def main() -> None:
    """Run the CLI."""
    app()


if __name__ == "__main__":
    main()

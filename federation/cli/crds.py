"""`federation crds`: the CustomResourceDefinitions generated from the API models."""

from __future__ import annotations

from pathlib import Path

import click

from federation.cli.common import out_console


@click.command("crds")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy/crds"),
    show_default=True,
    help="Where the CRD files go.",
)
@click.option("--check", is_flag=True, help="Only compare: exit 1 if the files differ from the models.")
def crds(output_dir: Path, check: bool) -> None:
    """Write the CustomResourceDefinitions generated from the API models.

    \b
    Example:
      federation crds && kubectl apply -f deploy/crds/
      federation crds --check      # in CI: are the checked-in CRDs up to date?
    """
    from federation.api import render_crds
    from federation.errors import ConfigError

    rendered = render_crds()
    if check:
        stale = [
            name
            for name, text in rendered.items()
            if not (output_dir / name).is_file() or (output_dir / name).read_text(encoding="utf-8") != text
        ]
        if stale:
            raise ConfigError(
                f"CRDs in {output_dir} differ from the models: {', '.join(sorted(stale))}",
                hint="run `federation crds` and commit the result",
            )
        out_console.print(f"{len(rendered)} CRDs in {output_dir} are up to date")
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (output_dir / name).write_text(text, encoding="utf-8")
    out_console.print(f"wrote {len(rendered)} CRDs to {output_dir}")

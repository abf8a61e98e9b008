"""`federation webhook`: the certificates and the configuration the hub needs to call the
admission webhook that `federation run` serves."""

from __future__ import annotations

from pathlib import Path

import click

from federation.cli.common import out_console
from federation.errors import ConfigError


@click.group("webhook")
def webhook() -> None:
    """The validating admission webhook that `federation run` serves at /validate (over HTTPS).

    \b
    Example (a local hub, the controller on this machine):
      federation webhook certs --dir certs --dns 127.0.0.1
      federation run --tls-cert certs/tls.crt --tls-key certs/tls.key --listen 127.0.0.1:8443 ...
      federation webhook config --ca-cert certs/ca.crt --url https://127.0.0.1:8443/validate \\
          | kubectl apply -f -
    """


@webhook.command("certs")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write ca.crt, tls.crt and tls.key.",
)
@click.option(
    "--dns",
    "names",
    multiple=True,
    required=True,
    help="A name the apiserver dials (repeat): SERVICE.NAMESPACE.svc in a cluster, or an IP.",
)
@click.option("--days", type=int, default=365, show_default=True, help="Validity of both certificates.")
def webhook_certs(directory: Path, names: tuple[str, ...], days: int) -> None:
    """Write a self-signed CA and a serving certificate for the webhook.

    The CA's base64 is the caBundle of the ValidatingWebhookConfiguration (`federation webhook
    config` puts it there). For production, prefer cert-manager or your own CA.

    \b
    Example:
      federation webhook certs --dir certs --dns federation.federation-system.svc
    """
    from federation.server import generate_certs

    paths = generate_certs(directory, names=list(names), days=days)
    out_console.print(f"CA certificate:      {paths.ca_cert}")
    out_console.print(f"serving certificate: {paths.tls_cert} (for {', '.join(names)})")
    out_console.print(f"serving key:         {paths.tls_key}")
    out_console.print(
        f"next: federation run --tls-cert {paths.tls_cert} --tls-key {paths.tls_key} ...", soft_wrap=True
    )


@webhook.command("config")
@click.option(
    "--ca-cert",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The CA that signed the serving certificate (its base64 becomes caBundle).",
)
@click.option("--url", help="Where the apiserver calls the webhook, e.g. https://127.0.0.1:8443/validate.")
@click.option("--service", help="Or a Service in the hub: NAMESPACE/NAME[:PORT] (port 443 by default).")
@click.option(
    "--failure-policy",
    type=click.Choice(["Ignore", "Fail"]),
    default="Ignore",
    show_default=True,
    help="What the apiserver does when the webhook does not answer (Ignore: admit).",
)
def webhook_config(ca_cert: Path, url: str | None, service: str | None, failure_policy: str) -> None:
    """Print the ValidatingWebhookConfiguration (YAML) for `kubectl apply -f -`.

    \b
    Example:
      federation webhook config --ca-cert certs/ca.crt --service federation-system/federation:443
    """
    import base64

    import yaml

    from federation.server import webhook_configuration

    if (url is None) == (service is None):
        raise ConfigError("give exactly one of --url or --service")
    target: tuple[str, str, int] | None = None
    if service is not None:
        ref, _, port = service.partition(":")
        namespace, _, name = ref.partition("/")
        if not namespace or not name or (port and not port.isdigit()):
            raise ConfigError(f"--service {service!r}: expected NAMESPACE/NAME[:PORT]")
        target = (namespace, name, int(port or 443))
    manifest = webhook_configuration(
        ca_bundle=base64.b64encode(ca_cert.read_bytes()).decode(),
        url=url,
        service=target,
        failure_policy=failure_policy,
    )
    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)

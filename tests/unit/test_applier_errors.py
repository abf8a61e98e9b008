"""The applier decides on error types, not on their messages: a kind the member does not serve
(yet) is retried on apply and done with on delete; a plain 404 is a failure or already gone."""

from __future__ import annotations

from federation.errors import KindNotServedError, NotFoundError
from federation.kube import GVK, ResourceInfo
from federation.propagate.applier import Applier, Result

WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}}


class _Discovery:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def resource_for(self, gvk: GVK) -> ResourceInfo:
        raise self.error


def _applier(error: Exception) -> Applier:
    return Applier(cluster="eu", client=None, discovery=_Discovery(error), hub_id="hub-1")  # type: ignore[arg-type]


def _not_served() -> KindNotServedError:
    # Worded like a missing object on purpose: the type decides, never the words.
    return KindNotServedError("404 not found", api_version="example.com/v1", kind="Widget", cluster="eu")


async def test_a_kind_not_served_is_retried_on_apply() -> None:
    outcome = await _applier(_not_served()).apply(WIDGET, overwrite=False, baseline=None)
    assert outcome.result is Result.RETRY


async def test_a_plain_not_found_fails_the_apply() -> None:
    error = NotFoundError("cluster eu: no resource serves example.com/v1 Widget", status=404)
    outcome = await _applier(error).apply(WIDGET, overwrite=False, baseline=None)
    assert outcome.result is Result.FAILED


async def test_deleting_a_copy_whose_kind_is_not_served_is_done() -> None:
    outcome = await _applier(_not_served()).delete(WIDGET)
    assert outcome.result is Result.DELETED
    assert outcome.message == "the member does not serve this kind any more"
    gone = await _applier(NotFoundError("no resource serves it", status=404)).delete(WIDGET)
    assert (gone.result, gone.message) == (Result.DELETED, "already gone")

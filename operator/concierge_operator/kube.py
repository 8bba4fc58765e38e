"""The few Kubernetes API calls the operator makes, each one request, none retried here.

Owned objects are written with server-side apply under one field manager. Each carries the
hash of what was last applied, so a reconcile that would change nothing writes nothing.
"""

from __future__ import annotations

import base64
from typing import Any, cast

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError
from kubernetes.dynamic.resource import Resource as ApiResource

from concierge.api.resources import API_GROUP
from concierge_operator.builders import Object, config_hash
from concierge_operator.settings import FIELD_MANAGER

APPLIED_HASH = "concierge.dev/applied-hash"
VERSION = "v1alpha1"


def load_client_config() -> client.ApiClient:
    """In a pod, the service account; elsewhere, KUBECONFIG (as kubectl finds it)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def contains(live: Any, desired: Any) -> bool:
    """Whether every field of `desired` has the same value in `live` (fields the server adds are ignored)."""
    if isinstance(desired, dict):
        # An empty map or list the server omits (e.g. no annotations) is not a difference.
        return isinstance(live, dict) and all(
            contains(live[k], v) if k in live else v in ({}, [], None) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    return bool(live == desired or str(live) == str(desired))


class Kube:
    """Reads and writes through one API client; API resources are discovered once and cached."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.dynamic = DynamicClient(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self._resources: dict[tuple[str, str], ApiResource] = {}

    def resource(self, api_version: str, kind: str) -> ApiResource:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Object | None:
        try:
            found = self.dynamic.get(self.resource(api_version, kind), name=name, namespace=namespace)
        except NotFoundError:
            return None
        result: Object = found.to_dict()
        return result

    def apply(self, body: Object) -> bool:
        """Server-side apply `body` unless the live object carries its hash and still holds every field
        of it (someone may have edited it since); True if written."""
        desired_hash = config_hash(body)
        meta = body["metadata"]
        live = self.get(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
        if (
            live is not None
            and (live["metadata"].get("annotations") or {}).get(APPLIED_HASH) == desired_hash
            and contains(live, body)
        ):
            return False
        meta["annotations"] = {**meta.get("annotations", {}), APPLIED_HASH: desired_hash}
        self.dynamic.server_side_apply(
            self.resource(body["apiVersion"], body["kind"]),
            body=body,
            namespace=meta["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return True

    def names(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[str]:
        """Names of the objects of a kind in `namespace` that match `label_selector`."""
        listed = self.dynamic.get(self.resource(api_version, kind), namespace=namespace, label_selector=label_selector)
        return sorted(str(item.metadata.name) for item in listed.items)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded; None when the Secret or the key is missing."""
        secret = self.get("v1", "Secret", namespace, name)
        encoded = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(encoded).decode() if encoded is not None else None

    def secret_has_key(self, namespace: str, name: str, key: str) -> bool:
        secret = self.get("v1", "Secret", namespace, name)
        return secret is not None and key in ((secret.get("data") or {}) | (secret.get("stringData") or {}))

    def get_custom(self, plural: str, namespace: str, name: str) -> Object | None:
        try:
            found = self.custom.get_namespaced_custom_object(API_GROUP, VERSION, namespace, plural, name)
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return cast(Object, found)

    def list_custom(self, plural: str, namespace: str) -> list[Object]:
        listed = cast(Object, self.custom.list_namespaced_custom_object(API_GROUP, VERSION, namespace, plural))
        return cast(list[Object], listed.get("items", []))

    def list_all_custom(self, plural: str) -> list[Object]:
        listed = cast(Object, self.custom.list_cluster_custom_object(API_GROUP, VERSION, plural))
        return cast(list[Object], listed.get("items", []))

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (the caller decided it changed)."""
        self.custom.patch_namespaced_custom_object_status(
            API_GROUP, VERSION, namespace, plural, name, {"status": status}, field_manager=FIELD_MANAGER
        )

"""The example policy's comments say what the code does: the Kubernetes versions on which each
pinning mechanism works follow from the API version the renderer applies."""

from __future__ import annotations

from config.settings import EXAMPLE_POLICY
from provisioners.bundle.render import ADMISSION_API


def test_the_mutating_admission_policy_comment_names_the_api_the_renderer_applies():
    text = EXAMPLE_POLICY.read_text()
    start = text.index("#   mutating-admission-policy")
    comment = text[start:text.index("\npinning:", start)]
    assert ADMISSION_API == "admissionregistration.k8s.io/v1"  # GA: Kubernetes 1.36 and later only
    assert ADMISSION_API in comment and "Kubernetes 1.36+" in comment
    assert "feature gate" not in comment and "use node-selector-annotations" in comment

"""Team image quotas on the Docker API's pulls, builds, loads and imports: images/quota_check.py,
checked before anything is uploaded further or queued.

Refused through quotas.guarded: the gate's refusal, audited, which the Docker API answers as 403
`{"message": "Berth refused this request: images: team t's quota is 2, 2 in use, this asks 1
more"}`.
"""

from images import quota_check


def check(call, action: str, team, host, *, refs=(), size: int = 0, decision=None, summary=None):
    """Refuse (403, audited) when the image(s) would pass the team's `images` or `image_bytes`
    quota; nothing to check for a public image (no team) or a team without quotas."""
    quota_check.check(
        call.user, action, team, host, refs=refs, size=size, decision=decision, summary=summary
    )

"""Which regions a job may run in, given where its output bucket lives.

Sources disagree on whether Vertex AI training may write `base_output_directory`
to a bucket outside the job's region:

- googleapis/python-aiplatform#885 (and GoogleCloudPlatform/vertex-ai-samples#19):
  a job in us-central1 failed with FAILED_PRECONDITION "The Cloud Storage bucket
  ... is in location `us`. It must be in the same regional location as the
  service location"; the maintainers' answer: use a bucket in the job's region.
- GoogleCloudPlatform/vertex-ai-samples#142 ("Relax language re: multi-region
  bucket for training"): a multi-region bucket does work for training, only
  slower or dearer than a regional one, and the samples use one.

The launcher's rule, so that failover never tries a pair that one source says
fails: a single-region bucket keeps every candidate to its own region; a
multi- or dual-region bucket, or one whose location is unknown (the bucket is
not readable here, e.g. a private setup without --storage-endpoint), lets
failover use any region with the same base_output_directory.
"""

from __future__ import annotations

import dataclasses

SINGLE_REGION = "region"
SPANNING = ("multi-region", "dual-region")


@dataclasses.dataclass(frozen=True)
class BucketRule:
    """The regions a bucket allows (None: any) and why, as the plan shows it."""

    location: str | None
    location_type: str | None
    regions: frozenset | None
    why: str

    def as_json(self) -> dict:
        return {"location": self.location, "location_type": self.location_type,
                "regions": sorted(self.regions) if self.regions is not None else None,
                "why": self.why}


def allowed_regions(location: str | None, location_type: str | None) -> BucketRule:
    """The rule for a bucket's Cloud Storage `location` and `locationType` (pure).

    Storage reports locations in upper case (US-CENTRAL1, US, NAM4); Vertex
    regions are lower case.
    """
    if not location or not location_type:
        return BucketRule(location, location_type, None,
                          "bucket location unknown: any region may write to it")
    if location_type == SINGLE_REGION:
        region = location.lower()
        return BucketRule(location, location_type, frozenset({region}),
                          f"output bucket is single-region {region}: the job runs only there")
    if location_type in SPANNING:
        return BucketRule(location, location_type, None,
                          f"output bucket is {location_type} {location}: any region")
    return BucketRule(location, location_type, None,
                      f"bucket location type {location_type!r} not known here: any region")


def restrict(candidates: list, rule: BucketRule) -> list:
    """The candidates with the kept ones outside the rule's regions dropped, saying why."""
    if rule.regions is None:
        return list(candidates)
    return [dataclasses.replace(c, kept=False, why=rule.why) if c.kept and c.region not in rule.regions else c
            for c in candidates]

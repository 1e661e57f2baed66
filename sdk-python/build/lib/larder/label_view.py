"""``LabelView`` (Feast's ``feast.LabelView``): human labels of entities, fed by a push source.

Larder registers it as a feature view of its source: labels are served and joined into training
sets like features. Of the conflict policies only ``LAST_WRITE_WINS`` (the newest event time
wins, Larder's rule for every view) is applied; another one is reported by ``larder apply``."""

import enum
from typing import Optional

from larder.feature_view import FeatureView


class ConflictPolicy(enum.Enum):
    """How conflicting labels of one entity are resolved (Feast's names)."""

    LAST_WRITE_WINS = "last_write_wins"
    LABELER_PRIORITY = "labeler_priority"
    MAJORITY_VOTE = "majority_vote"


class LabelView(FeatureView):
    """A feature view of labels, with the field naming who labelled and a conflict policy."""

    def __init__(self, *, name: str, source, labeler_field: str = "labeler",
                 conflict_policy: ConflictPolicy = ConflictPolicy.LAST_WRITE_WINS,
                 reference_feature_view: Optional[str] = None, **kwargs):
        super().__init__(name=name, source=source, **kwargs)
        self.labeler_field = labeler_field
        self.conflict_policy = conflict_policy
        self.reference_feature_view = reference_feature_view

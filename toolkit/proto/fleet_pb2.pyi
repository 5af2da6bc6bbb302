from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("enrollment_token", "hardware")
    ENROLLMENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    enrollment_token: str
    hardware: str
    def __init__(self, enrollment_token: _Optional[str] = ..., hardware: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("device_id", "device_token", "cohort", "expires_ms")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    device_token: str
    cohort: str
    expires_ms: int
    def __init__(self, device_id: _Optional[str] = ..., device_token: _Optional[str] = ..., cohort: _Optional[str] = ..., expires_ms: _Optional[int] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("report_id", "model_version", "artifact", "start_ms", "end_ms", "count", "class_counts", "confidence", "projections", "latency", "errors", "confidence_sum", "merged", "shadow_version", "shadow_count", "shadow_agree", "schema_version", "class_confidence")
    class ErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CLASS_COUNTS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_SUM_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASS_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    model_version: str
    artifact: str
    start_ms: int
    end_ms: int
    count: int
    class_counts: _containers.RepeatedScalarFieldContainer[int]
    confidence: Histogram
    projections: _containers.RepeatedCompositeFieldContainer[Histogram]
    latency: Histogram
    errors: _containers.ScalarMap[str, int]
    confidence_sum: float
    merged: int
    shadow_version: str
    shadow_count: int
    shadow_agree: int
    schema_version: int
    class_confidence: _containers.RepeatedCompositeFieldContainer[Histogram]
    def __init__(self, report_id: _Optional[str] = ..., model_version: _Optional[str] = ..., artifact: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., count: _Optional[int] = ..., class_counts: _Optional[_Iterable[int]] = ..., confidence: _Optional[_Union[Histogram, _Mapping]] = ..., projections: _Optional[_Iterable[_Union[Histogram, _Mapping]]] = ..., latency: _Optional[_Union[Histogram, _Mapping]] = ..., errors: _Optional[_Mapping[str, int]] = ..., confidence_sum: _Optional[float] = ..., merged: _Optional[int] = ..., shadow_version: _Optional[str] = ..., shadow_count: _Optional[int] = ..., shadow_agree: _Optional[int] = ..., schema_version: _Optional[int] = ..., class_confidence: _Optional[_Iterable[_Union[Histogram, _Mapping]]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("windows", "device_id")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[Window]
    device_id: str
    def __init__(self, windows: _Optional[_Iterable[_Union[Window, _Mapping]]] = ..., device_id: _Optional[str] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("acknowledged", "duplicates")
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    acknowledged: _containers.RepeatedScalarFieldContainer[str]
    duplicates: int
    def __init__(self, acknowledged: _Optional[_Iterable[str]] = ..., duplicates: _Optional[int] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("prediction_id", "label", "predicted", "model_version", "policy_revision", "artifact")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    label: int
    predicted: int
    model_version: str
    policy_revision: int
    artifact: str
    def __init__(self, prediction_id: _Optional[str] = ..., label: _Optional[int] = ..., predicted: _Optional[int] = ..., model_version: _Optional[str] = ..., policy_revision: _Optional[int] = ..., artifact: _Optional[str] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("labels",)
    LABELS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class PolicyRequest(_message.Message):
    __slots__ = ("known_revision",)
    KNOWN_REVISION_FIELD_NUMBER: _ClassVar[int]
    known_revision: int
    def __init__(self, known_revision: _Optional[int] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("version", "digest")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    version: str
    digest: str
    def __init__(self, version: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("revision", "cohort", "baseline", "canary", "canary_share", "fallback", "fallback_artifact", "shadow", "reason", "remedy")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_SHARE_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REMEDY_FIELD_NUMBER: _ClassVar[int]
    revision: int
    cohort: str
    baseline: Target
    canary: Target
    canary_share: float
    fallback: Target
    fallback_artifact: str
    shadow: Target
    reason: str
    remedy: Remedy
    def __init__(self, revision: _Optional[int] = ..., cohort: _Optional[str] = ..., baseline: _Optional[_Union[Target, _Mapping]] = ..., canary: _Optional[_Union[Target, _Mapping]] = ..., canary_share: _Optional[float] = ..., fallback: _Optional[_Union[Target, _Mapping]] = ..., fallback_artifact: _Optional[str] = ..., shadow: _Optional[_Union[Target, _Mapping]] = ..., reason: _Optional[str] = ..., remedy: _Optional[_Union[Remedy, _Mapping]] = ...) -> None: ...

class FetchBundleRequest(_message.Message):
    __slots__ = ("digest", "offset")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    digest: str
    offset: int
    def __init__(self, digest: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class BundleChunk(_message.Message):
    __slots__ = ("data", "offset", "total", "archive_sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total: int
    archive_sha256: str
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total: _Optional[int] = ..., archive_sha256: _Optional[str] = ...) -> None: ...

class EventRequest(_message.Message):
    __slots__ = ("kind", "detail", "digest")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    kind: str
    detail: str
    digest: str
    def __init__(self, kind: _Optional[str] = ..., detail: _Optional[str] = ..., digest: _Optional[str] = ...) -> None: ...

class EventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateEnrollmentTokenRequest(_message.Message):
    __slots__ = ("cohort", "uses")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    uses: int
    def __init__(self, cohort: _Optional[str] = ..., uses: _Optional[int] = ...) -> None: ...

class CreateEnrollmentTokenResponse(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class PublishBundleRequest(_message.Message):
    __slots__ = ("archive",)
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    archive: bytes
    def __init__(self, archive: _Optional[bytes] = ...) -> None: ...

class PublishBundleResponse(_message.Message):
    __slots__ = ("digest", "version", "signed")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    digest: str
    version: str
    signed: bool
    def __init__(self, digest: _Optional[str] = ..., version: _Optional[str] = ..., signed: _Optional[bool] = ...) -> None: ...

class AssignCohortRequest(_message.Message):
    __slots__ = ("device_id", "cohort")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    cohort: str
    def __init__(self, device_id: _Optional[str] = ..., cohort: _Optional[str] = ...) -> None: ...

class SetBaselineRequest(_message.Message):
    __slots__ = ("cohort", "version")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    version: str
    def __init__(self, cohort: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class StartCanaryRequest(_message.Message):
    __slots__ = ("cohort", "version", "share")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    version: str
    share: float
    def __init__(self, cohort: _Optional[str] = ..., version: _Optional[str] = ..., share: _Optional[float] = ...) -> None: ...

class StopCanaryRequest(_message.Message):
    __slots__ = ("cohort", "promote")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    promote: bool
    def __init__(self, cohort: _Optional[str] = ..., promote: _Optional[bool] = ...) -> None: ...

class SetFallbackRequest(_message.Message):
    __slots__ = ("cohort", "artifact", "version", "reason")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    artifact: str
    version: str
    reason: str
    def __init__(self, cohort: _Optional[str] = ..., artifact: _Optional[str] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class StartShadowRequest(_message.Message):
    __slots__ = ("cohort", "version")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    version: str
    def __init__(self, cohort: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class CohortState(_message.Message):
    __slots__ = ("cohort", "policy")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    policy: Policy
    def __init__(self, cohort: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class ListDecisionsRequest(_message.Message):
    __slots__ = ("cohort",)
    COHORT_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    def __init__(self, cohort: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("id", "cohort", "kind", "model_version", "evidence_json", "created_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    cohort: str
    kind: str
    model_version: str
    evidence_json: str
    created_ms: int
    def __init__(self, id: _Optional[int] = ..., cohort: _Optional[str] = ..., kind: _Optional[str] = ..., model_version: _Optional[str] = ..., evidence_json: _Optional[str] = ..., created_ms: _Optional[int] = ...) -> None: ...

class ListDecisionsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("device_id", "kind", "detail", "digest", "created_ms")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    kind: str
    detail: str
    digest: str
    created_ms: int
    def __init__(self, device_id: _Optional[str] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ..., digest: _Optional[str] = ..., created_ms: _Optional[int] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateTokenRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateTokenResponse(_message.Message):
    __slots__ = ("device_token", "expires_ms")
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    device_token: str
    expires_ms: int
    def __init__(self, device_token: _Optional[str] = ..., expires_ms: _Optional[int] = ...) -> None: ...

class RevokeDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class RevokeDeviceResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...

class Remedy(_message.Message):
    __slots__ = ("logit_bias", "cloud", "cloud_confidence_below", "cloud_latency_ms", "cloud_per_minute", "raw_inputs_allowed", "examples_allowed", "max_examples")
    LOGIT_BIAS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_FIELD_NUMBER: _ClassVar[int]
    CLOUD_CONFIDENCE_BELOW_FIELD_NUMBER: _ClassVar[int]
    CLOUD_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CLOUD_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    RAW_INPUTS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MAX_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    logit_bias: _containers.RepeatedScalarFieldContainer[float]
    cloud: bool
    cloud_confidence_below: float
    cloud_latency_ms: float
    cloud_per_minute: float
    raw_inputs_allowed: bool
    examples_allowed: bool
    max_examples: int
    def __init__(self, logit_bias: _Optional[_Iterable[float]] = ..., cloud: _Optional[bool] = ..., cloud_confidence_below: _Optional[float] = ..., cloud_latency_ms: _Optional[float] = ..., cloud_per_minute: _Optional[float] = ..., raw_inputs_allowed: _Optional[bool] = ..., examples_allowed: _Optional[bool] = ..., max_examples: _Optional[int] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("values", "rows", "model_version")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    rows: int
    model_version: str
    def __init__(self, values: _Optional[_Iterable[float]] = ..., rows: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("logits", "rows", "model")
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    logits: _containers.RepeatedScalarFieldContainer[float]
    rows: int
    model: str
    def __init__(self, logits: _Optional[_Iterable[float]] = ..., rows: _Optional[int] = ..., model: _Optional[str] = ...) -> None: ...

class SetPrivacyRequest(_message.Message):
    __slots__ = ("cohort", "raw_inputs_allowed", "cloud_per_minute", "examples_allowed", "max_examples")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    RAW_INPUTS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    CLOUD_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MAX_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    raw_inputs_allowed: bool
    cloud_per_minute: float
    examples_allowed: bool
    max_examples: int
    def __init__(self, cohort: _Optional[str] = ..., raw_inputs_allowed: _Optional[bool] = ..., cloud_per_minute: _Optional[float] = ..., examples_allowed: _Optional[bool] = ..., max_examples: _Optional[int] = ...) -> None: ...

class ListAuditRequest(_message.Message):
    __slots__ = ("cohort",)
    COHORT_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    def __init__(self, cohort: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("device_id", "cohort", "kind", "bytes", "reason", "created_ms")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    cohort: str
    kind: str
    bytes: int
    reason: str
    created_ms: int
    def __init__(self, device_id: _Optional[str] = ..., cohort: _Optional[str] = ..., kind: _Optional[str] = ..., bytes: _Optional[int] = ..., reason: _Optional[str] = ..., created_ms: _Optional[int] = ...) -> None: ...

class ListAuditResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class ListMeasurementsRequest(_message.Message):
    __slots__ = ("cohort",)
    COHORT_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    def __init__(self, cohort: _Optional[str] = ...) -> None: ...

class Measurement(_message.Message):
    __slots__ = ("cohort", "decision_id", "phase", "stats_json", "created_ms")
    COHORT_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STATS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    decision_id: int
    phase: str
    stats_json: str
    created_ms: int
    def __init__(self, cohort: _Optional[str] = ..., decision_id: _Optional[int] = ..., phase: _Optional[str] = ..., stats_json: _Optional[str] = ..., created_ms: _Optional[int] = ...) -> None: ...

class ListMeasurementsResponse(_message.Message):
    __slots__ = ("measurements",)
    MEASUREMENTS_FIELD_NUMBER: _ClassVar[int]
    measurements: _containers.RepeatedCompositeFieldContainer[Measurement]
    def __init__(self, measurements: _Optional[_Iterable[_Union[Measurement, _Mapping]]] = ...) -> None: ...

class Example(_message.Message):
    __slots__ = ("prediction_id", "values", "shape", "dtype", "label", "model_version")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    values: _containers.RepeatedScalarFieldContainer[float]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    label: int
    model_version: str
    def __init__(self, prediction_id: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., label: _Optional[int] = ..., model_version: _Optional[str] = ...) -> None: ...

class ExamplesRequest(_message.Message):
    __slots__ = ("examples",)
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[Example]
    def __init__(self, examples: _Optional[_Iterable[_Union[Example, _Mapping]]] = ...) -> None: ...

class ExamplesResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("cohort",)
    COHORT_FIELD_NUMBER: _ClassVar[int]
    cohort: str
    def __init__(self, cohort: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "kind", "cohort", "status", "attempts", "result_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COHORT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    cohort: str
    status: str
    attempts: int
    result_json: str
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., cohort: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., result_json: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

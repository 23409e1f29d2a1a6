// The GraphQL documents of the console (schema.graphql; names from API.md).

const QUEUE_ITEM = `fragment QueueItem on Patch {
  id patchId packageName currentVersion targetVersion versionBump cveId severity cvssScore priority status
  slaStatus slaDeadline createdAt version requiresEscalation requiredApprovals approvals { approver }
  mlPrediction { confidence prediction } wargaming { validationPassed phase1Success phase2Success } mlWargamingAgreement
}`;

export const ME = `query Me { me { subject roles } }`;

export const QUEUE = `subscription Queue($first: Int!, $filter: PendingFilter) {
  pendingQueue(first: $first, filter: $filter) { totalCount asOfSeq items { ...QueueItem } }
} ${QUEUE_ITEM}`;

export const QUEUE_COUNT = `subscription QueueCount($filter: PendingFilter) { pendingQueue(first: 1, filter: $filter) { totalCount } }`;

export const QUEUE_PAGE = `query QueuePage($first: Int!, $after: String, $filter: PendingFilter) {
  pendingPatches(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { ...QueueItem } }
  }
} ${QUEUE_ITEM}`;

export const QUEUE_CURSOR = `query QueueCursor($first: Int!, $after: String, $filter: PendingFilter) {
  pendingPatches(first: $first, after: $after, filter: $filter) { pageInfo { hasNextPage endCursor } }
}`;

const PATCH_DETAIL = `fragment PatchDetail on Patch {
  id patchId apvId cveId packageName currentVersion targetVersion versionBump severity cvssScore cvssVector cweIds
  affectedSystems patchSizeLines diff priority status mlWargamingAgreement autoApprovalEligible requiresEscalation
  decidedBy decidedAt deploymentOutcome reason comment createdAt updatedAt slaDeadline slaStatus version requiredApprovals
  mlPrediction { modelVersion confidence prediction executionTimeMs shapValues { feature value } }
  wargaming { phase1Success phase2Success validationPassed executionTimeMs errorMessage exploitId }
  approvals { approver at comment }
  comments { id author body parentId createdAt }
  auditTrail { seq action actor at details ipAddress userAgent hash }
}`;

export const PATCH = `query Patch($id: ID!) { patch(id: $id) { ...PatchDetail } autoApprovalState { threshold paused } } ${PATCH_DETAIL}`;

const DECIDED = `id status version decidedBy requiredApprovals approvals { approver }`;
export const APPROVE = `mutation Approve($id: ID!, $comment: String, $expectedVersion: Int) {
  approvePatch(id: $id, comment: $comment, expectedVersion: $expectedVersion) { ${DECIDED} } }`;
export const REJECT = `mutation Reject($id: ID!, $reason: String!, $comment: String, $expectedVersion: Int) {
  rejectPatch(id: $id, reason: $reason, comment: $comment, expectedVersion: $expectedVersion) { ${DECIDED} } }`;
export const ESCALATE = `mutation Escalate($id: ID!, $reason: String!, $expectedVersion: Int) {
  escalatePatch(id: $id, reason: $reason, expectedVersion: $expectedVersion) { ${DECIDED} } }`;
export const CANCEL = `mutation Cancel($id: ID!, $reason: String!, $expectedVersion: Int) {
  cancelPatch(id: $id, reason: $reason, expectedVersion: $expectedVersion) { ${DECIDED} } }`;
export const ADD_COMMENT = `mutation AddComment($id: ID!, $body: String!, $parentId: ID) {
  addComment(id: $id, body: $body, parentId: $parentId) { id } }`;

const SUMMARY_FIELDS = `totalPatches pending approved rejected autoApproved escalated cancelled avgDecisionTimeSeconds
  p95DecisionTimeSeconds autoApprovalRate rejectionRate mlAccuracy slaBreaches autoApprovalPrecision`;
export const SUMMARY = `subscription Summary { analyticsSummary { ${SUMMARY_FIELDS} } }`;
export const BREAKDOWN = `query Breakdown($since: DateTime, $interval: AnalyticsInterval!) {
  analyticsSummary(since: $since) { ${SUMMARY_FIELDS} }
  analyticsBreakdown(since: $since, interval: $interval) {
    interval
    decisionTimes { fromSeconds toSeconds count }
    byPriority { priority total pending approved rejected autoApproved escalated cancelled autoApprovalRate rejectionRate avgDecisionTimeSeconds slaBreaches }
    overTime { start submitted approved rejected autoApproved autoApprovalRate rejectionRate }
  }
}`;

const STATE = `paused reason changedBy changedAt threshold policy autoApprovalEnabled autoApprovalDisabledReason
  guard { windowSize outcomes failures precisionUpperBound tripped trippedAt reason modelVersion }`;
export const MODEL = `query Model {
  mlModel { version trainedAt trainingSamples threshold metrics featureNames autoApprovalEnabled autoApprovalDisabledReason active drift { feature psi } }
  mlModels(first: 20) { version trainedAt trainingSamples active metrics }
  autoApprovalState { ${STATE} }
}`;
export const ACTIVATE = `mutation Activate($version: String!) { activateModel(version: $version) { version active } }`;
export const SET_PAUSED = `mutation SetPaused($paused: Boolean!, $reason: String!) { setAutoApprovalPaused(paused: $paused, reason: $reason) { ${STATE} } }`;
export const TRAIN = `mutation Train { trainModel { version trainingSamples threshold autoApprovalEnabled active metrics } }`;

// Patch groups: one fix (CVE, package, target version) across many services.
const GROUP_FIELDS = `key cveId packageName targetVersion size pendingCount highestPriority oldestPendingAt statusCounts requiresEscalationCount`;
export const GROUPS = `subscription Groups($first: Int!) { pendingGroups(first: $first) { totalCount asOfSeq items { ${GROUP_FIELDS} } } }`;
// What a group decision would do for the signed-in reviewer, for both decisions (the service's own rules).
const PREVIEW_MEMBER = `id patchId priority status requiredApprovals approvals { approver }`;
const PREVIEW_FIELDS = `group { key size pendingCount } applied { ${PREVIEW_MEMBER} } skipped { code message patch { ${PREVIEW_MEMBER} } }`;
export const GROUP_PREVIEW = `query GroupPreview($key: String!) {
  approve: groupDecisionPreview(key: $key, decision: APPROVE) { ${PREVIEW_FIELDS} }
  reject: groupDecisionPreview(key: $key, decision: REJECT) { ${PREVIEW_FIELDS} } }`;
export const DECIDE_GROUP = `mutation DecideGroup($key: String!, $decision: GroupDecision!, $reason: String, $comment: String, $expected: [ID!]) {
  decideGroup(key: $key, decision: $decision, reason: $reason, comment: $comment, expectedMemberIds: $expected) {
    group { key pendingCount } applied { id patchId status } skipped { code message patch { id patchId } } } }`;

const ENDPOINT = `id url format kinds minPriority enabled failing description createdAt lastDeliveredSeq lagEvents`;
export const WEBHOOKS = `query Webhooks { webhookEndpoints { ${ENDPOINT} } }`;
export const WEBHOOK_DELIVERIES = `query WebhookDeliveries($id: ID!, $status: DeliveryStatus) {
  webhookDeliveries(endpointId: $id, first: 100, status: $status) { totalCount
    edges { node { id eventSeq kind status attempts lastStatusCode lastError nextAttemptAt deliveredAt } } } }`;
export const CREATE_WEBHOOK = `mutation CreateWebhook($input: WebhookInput!) { createWebhook(input: $input) { secret endpoint { ${ENDPOINT} } } }`;
export const UPDATE_WEBHOOK = `mutation UpdateWebhook($id: ID!, $input: WebhookInput!) { updateWebhook(id: $id, input: $input) { ${ENDPOINT} } }`;
export const DELETE_WEBHOOK = `mutation DeleteWebhook($id: ID!) { deleteWebhook(id: $id) }`;
export const ROTATE_WEBHOOK_SECRET = `mutation RotateWebhookSecret($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }`;
export const REDELIVER_WEBHOOK = `mutation RedeliverWebhook($id: ID!) { redeliverWebhook(deliveryId: $id) { id status } }`;

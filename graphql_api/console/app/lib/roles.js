// What the signed-in roles allow: the same table as the service's (db/services/actor.py CAPABILITIES). It only
// decides which controls the page shows; the service checks every request itself.
const CAPABILITIES = {
  decide: ["REVIEWER", "LEAD", "ADMIN"],
  decide_escalated: ["LEAD", "ADMIN"],
  escalate: ["REVIEWER", "LEAD", "ADMIN"],
  comment: ["REVIEWER", "LEAD", "ADMIN"],
  cancel: ["LEAD", "ADMIN", "SERVICE"],
  administer: ["ADMIN"],
};

export const can = (roles, capability) => (roles ?? []).some((role) => CAPABILITIES[capability].includes(role));

export const isOpen = (patch) => patch.status === "PENDING" || patch.status === "ESCALATED";
export const needsLead = (patch) => patch.requiresEscalation || patch.status === "ESCALATED";

// The decisions the roles may take on this patch now (db/services/decisions.py, comments.py).
export function allowed(roles, patch) {
  const open = isOpen(patch);
  const lead = can(roles, "decide_escalated");
  const decide = open && can(roles, "decide") && (!needsLead(patch) || lead);
  return {
    approve: decide,
    reject: decide,
    escalate: patch.status === "PENDING" && can(roles, "escalate") && (!patch.requiresEscalation || lead),
    cancel: open && can(roles, "cancel"),
    comment: can(roles, "comment") && !(open && patch.requiresEscalation && !lead),
  };
}

// Why a group decision will skip this member for this reviewer (the single-patch rules of
// db/services/decisions.py), or null when it will be applied. `submitter` is the subject that submitted it.
export function groupSkip(viewer, patch, decision, submitter) {
  if (!can(viewer.roles, "decide")) return { code: "FORBIDDEN", why: "your roles cannot decide patches" };
  if (needsLead(patch) && !can(viewer.roles, "decide_escalated")) {
    return { code: "FORBIDDEN", why: patch.status === "ESCALATED" ? "escalated: needs a lead" : "requires escalation: needs a lead" };
  }
  if (decision === "APPROVE" && submitter === viewer.subject) return { code: "FORBIDDEN", why: "you submitted it (separation of duties)" };
  if (decision === "APPROVE" && (patch.approvals ?? []).some((a) => a.approver === viewer.subject)) {
    return { code: "CONFLICT", why: "you already approved it" };
  }
  return null;
}

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

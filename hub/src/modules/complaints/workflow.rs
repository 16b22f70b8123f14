//! PLIPMAS's two workflows and their deadlines: public complaints (SP4N-LAPOR! practice) and
//! information requests under Law 14/2008 (KIP). Deadlines are in working days.

use serde::{Deserialize, Serialize};

/// What a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A public complaint (`pengaduan`).
    Complaint,
    /// An information request (`permohonan_informasi`).
    Information,
}

impl Kind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Complaint => "complaint",
            Self::Information => "information",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "complaint" => Some(Self::Complaint),
            "information" => Some(Self::Information),
            _ => None,
        }
    }

    /// The state a new case starts in.
    pub fn initial(self) -> &'static str {
        match self {
            Self::Complaint => "received",
            Self::Information => "registered",
        }
    }
}

/// The early closes of a complaint, each needing a reason.
pub const EARLY_CLOSES: [&str; 3] = ["withdrawn", "duplicate", "not_competent"];

/// The states that may follow `status`.
pub fn allowed(kind: Kind, status: &str) -> &'static [&'static str] {
    match (kind, status) {
        (Kind::Complaint, "received") => &["responded", "withdrawn", "duplicate", "not_competent"],
        (Kind::Complaint, "responded") => &[
            "evidence_tested",
            "clarification",
            "answered",
            "withdrawn",
            "duplicate",
            "not_competent",
        ],
        (Kind::Complaint, "evidence_tested") => &[
            "clarification",
            "answered",
            "withdrawn",
            "duplicate",
            "not_competent",
        ],
        (Kind::Complaint, "clarification") => {
            &["answered", "withdrawn", "duplicate", "not_competent"]
        }
        (Kind::Complaint, "answered") => &["closed_satisfied", "mediation"],
        (Kind::Complaint, "mediation") => &["closed_satisfied", "escalated_to_regent"],
        (Kind::Complaint, "escalated_to_regent") => &["closed_by_regent"],
        (Kind::Information, "registered") => &["extended", "decided"],
        (Kind::Information, "extended") => &["decided"],
        (Kind::Information, "decided") => &["objected"],
        (Kind::Information, "objected") => &["objection_answered"],
        (Kind::Information, "objection_answered") => &["commission"],
        _ => &[],
    }
}

/// Whether a case in `status` is finished on the hub's side.
pub fn is_closed(kind: Kind, status: &str) -> bool {
    allowed(kind, status).is_empty()
}

/// Who has to act before a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// The OPD (or the PPID, the mediator, the Regent): past it, the case is overdue.
    Agency,
    /// The complainant or requester may still object: past it, the window is over.
    Requester,
}

/// Where a deadline counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The day the case was received.
    Received,
    /// The day of this transition.
    Transition,
    /// The deadline in force before this transition (an extension).
    PreviousDeadline,
    /// The deadline stays as it was.
    Keep,
}

/// The working days of a complaint category's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComplaintDays {
    /// Verification and forwarding to the OPD, from receipt.
    pub verification_days: u32,
    /// The OPD's follow-up, from forwarding.
    pub follow_up_days: u32,
    /// An answered case closes itself when the complainant does not object within this.
    pub auto_close_days: u32,
    /// Mediation after an objection.
    pub mediation_days: u32,
    /// The Regent's decision after escalation.
    pub regent_days: u32,
}

impl Default for ComplaintDays {
    fn default() -> Self {
        Self {
            verification_days: 3,
            follow_up_days: 5,
            auto_close_days: 10,
            mediation_days: 10,
            regent_days: 10,
        }
    }
}

/// Law 14/2008's periods for information requests, in working days.
pub mod kip {
    /// The PPID decides within ten working days.
    pub const DECISION: u32 = 10;
    /// Extendable once by seven, with a written reason.
    pub const EXTENSION: u32 = 7;
    /// The requester may object to the PPID's superior within thirty.
    pub const OBJECTION_WINDOW: u32 = 30;
    /// The superior answers within thirty.
    pub const OBJECTION_ANSWER: u32 = 30;
    /// Then the requester may go to the Information Commission within fourteen.
    pub const COMMISSION_WINDOW: u32 = 14;
}

/// The deadline a case gets on entering `status`: its name, working days, duty and base.
pub fn deadline_for(
    kind: Kind,
    status: &str,
    days: &ComplaintDays,
) -> Option<(&'static str, u32, Duty, Base)> {
    use Base::*;
    use Duty::*;
    match (kind, status) {
        (Kind::Complaint, "received") => {
            Some(("verification", days.verification_days, Agency, Received))
        }
        (Kind::Complaint, "responded") => {
            Some(("follow_up", days.follow_up_days, Agency, Transition))
        }
        (Kind::Complaint, "evidence_tested" | "clarification") => {
            Some(("follow_up", 0, Agency, Keep))
        }
        (Kind::Complaint, "answered") => {
            Some(("auto_close", days.auto_close_days, Requester, Transition))
        }
        (Kind::Complaint, "mediation") => {
            Some(("mediation", days.mediation_days, Agency, Transition))
        }
        (Kind::Complaint, "escalated_to_regent") => {
            Some(("regent", days.regent_days, Agency, Transition))
        }
        (Kind::Information, "registered") => Some(("decision", kip::DECISION, Agency, Received)),
        (Kind::Information, "extended") => {
            Some(("decision", kip::EXTENSION, Agency, PreviousDeadline))
        }
        (Kind::Information, "decided") => Some((
            "objection_window",
            kip::OBJECTION_WINDOW,
            Requester,
            Transition,
        )),
        (Kind::Information, "objected") => Some((
            "objection_answer",
            kip::OBJECTION_ANSWER,
            Agency,
            Transition,
        )),
        (Kind::Information, "objection_answered") => Some((
            "commission_window",
            kip::COMMISSION_WINDOW,
            Requester,
            Transition,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complaint_paths_of_the_issue_are_allowed() {
        let path = [
            "received",
            "responded",
            "evidence_tested",
            "clarification",
            "answered",
            "closed_satisfied",
        ];
        for pair in path.windows(2) {
            assert!(
                allowed(Kind::Complaint, pair[0]).contains(&pair[1]),
                "{pair:?}"
            );
        }
        assert!(allowed(Kind::Complaint, "answered").contains(&"mediation"));
        assert!(allowed(Kind::Complaint, "mediation").contains(&"escalated_to_regent"));
        assert_eq!(
            allowed(Kind::Complaint, "escalated_to_regent"),
            ["closed_by_regent"]
        );
        for early in EARLY_CLOSES {
            assert!(allowed(Kind::Complaint, "received").contains(&early));
            assert!(is_closed(Kind::Complaint, early));
        }
        assert!(!allowed(Kind::Complaint, "answered").contains(&"withdrawn"));
        assert!(!allowed(Kind::Complaint, "received").contains(&"answered"));
    }

    #[test]
    fn an_information_request_is_extended_at_most_once() {
        assert_eq!(
            allowed(Kind::Information, "registered"),
            ["extended", "decided"]
        );
        assert_eq!(allowed(Kind::Information, "extended"), ["decided"]);
        let (_, days, duty, base) =
            deadline_for(Kind::Information, "extended", &ComplaintDays::default()).unwrap();
        assert_eq!(
            (days, duty, base),
            (7, Duty::Agency, Base::PreviousDeadline)
        );
        assert!(is_closed(Kind::Information, "commission"));
    }
}

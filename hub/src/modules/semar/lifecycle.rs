//! The steps of a dispatch and of a call, and which step may follow which.

use serde::{Deserialize, Serialize};

/// A dispatch's steps, NEMSIS-like (eTimes): the hub records `assigned`, the crew's app
/// records the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The hub chose the unit.
    Assigned,
    /// The crew acknowledged the job.
    Notified,
    /// The unit is driving to the scene.
    EnRoute,
    /// The unit arrived at the scene.
    OnScene,
    /// The crew is with the patient.
    AtPatient,
    /// The unit left the scene with the patient.
    LeftScene,
    /// The unit arrived at the destination facility.
    AtFacility,
    /// Transfer of care: the patient is in the treatment room. The call closes here.
    HandedOver,
    /// The unit can take a new job.
    BackInService,
    /// The job stopped: before the patient, the call goes back to the queue; at the patient
    /// (treated on scene, transport refused), the call closes.
    Cancelled,
}

/// Every step, in order; the events the crews send are all but `Assigned`.
pub const STEPS: [Step; 10] = [
    Step::Assigned,
    Step::Notified,
    Step::EnRoute,
    Step::OnScene,
    Step::AtPatient,
    Step::LeftScene,
    Step::AtFacility,
    Step::HandedOver,
    Step::BackInService,
    Step::Cancelled,
];

impl Step {
    /// The name used in the API, the state store and the datasets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Notified => "notified",
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::AtPatient => "at_patient",
            Self::LeftScene => "left_scene",
            Self::AtFacility => "at_facility",
            Self::HandedOver => "handed_over",
            Self::BackInService => "back_in_service",
            Self::Cancelled => "cancelled",
        }
    }

    /// The step named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        STEPS.into_iter().find(|s| s.name() == name)
    }

    /// The steps that may follow this one.
    pub fn next(self) -> &'static [Step] {
        match self {
            Self::Assigned => &[Self::Notified, Self::EnRoute, Self::Cancelled],
            Self::Notified => &[Self::EnRoute, Self::Cancelled],
            Self::EnRoute => &[Self::OnScene, Self::Cancelled],
            Self::OnScene => &[Self::AtPatient, Self::Cancelled],
            Self::AtPatient => &[Self::LeftScene, Self::Cancelled],
            Self::LeftScene => &[Self::AtFacility],
            Self::AtFacility => &[Self::HandedOver],
            Self::HandedOver => &[Self::BackInService],
            Self::BackInService | Self::Cancelled => &[],
        }
    }

    /// Whether the unit is free again after this step.
    pub fn frees_unit(self) -> bool {
        matches!(self, Self::BackInService | Self::Cancelled)
    }

    /// Whether the step names the destination facility (and may carry it).
    pub fn takes_facility(self) -> bool {
        matches!(self, Self::LeftScene | Self::AtFacility | Self::HandedOver)
    }
}

/// What a step does to the call it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEffect {
    /// Nothing.
    None,
    /// The call is done: `selesai` (handed over) or `dibatalkan` (cancelled at the patient).
    Close(CallStatus),
    /// The unit gave up before reaching the patient: the call waits for another unit, in its
    /// place by confirmation time.
    Requeue,
}

/// What `step`, coming after `previous`, does to the call.
pub fn call_effect(previous: Step, step: Step) -> CallEffect {
    match step {
        Step::HandedOver => CallEffect::Close(CallStatus::Selesai),
        Step::Cancelled if previous == Step::AtPatient => CallEffect::Close(CallStatus::Dibatalkan),
        Step::Cancelled => CallEffect::Requeue,
        _ => CallEffect::None,
    }
}

/// A call's states (the `status` of the `panggilan_darurat` schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Received; an operator has to confirm it by phone.
    MenungguKonfirmasi,
    /// Confirmed; being assigned.
    Dikonfirmasi,
    /// Confirmed, waiting for a free unit.
    DalamAntrean,
    /// A unit is on it.
    Ditugaskan,
    /// The patient was handed over.
    Selesai,
    /// Cancelled by the operator, or ended at the patient without transport.
    Dibatalkan,
}

impl CallStatus {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MenungguKonfirmasi => "menunggu_konfirmasi",
            Self::Dikonfirmasi => "dikonfirmasi",
            Self::DalamAntrean => "dalam_antrean",
            Self::Ditugaskan => "ditugaskan",
            Self::Selesai => "selesai",
            Self::Dibatalkan => "dibatalkan",
        }
    }

    /// Every status, in the order a call goes through them.
    pub const ALL: [CallStatus; 6] = [
        Self::MenungguKonfirmasi,
        Self::Dikonfirmasi,
        Self::DalamAntrean,
        Self::Ditugaskan,
        Self::Selesai,
        Self::Dibatalkan,
    ];

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether nothing more happens to the call.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Selesai | Self::Dibatalkan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_allowed_and_nothing_goes_back() {
        let path = [
            Step::Assigned,
            Step::Notified,
            Step::EnRoute,
            Step::OnScene,
            Step::AtPatient,
            Step::LeftScene,
            Step::AtFacility,
            Step::HandedOver,
            Step::BackInService,
        ];
        for pair in path.windows(2) {
            assert!(pair[0].next().contains(&pair[1]), "{pair:?}");
        }
        for (i, step) in path.iter().enumerate() {
            for earlier in &path[..=i] {
                assert!(!step.next().contains(earlier), "{step:?} -> {earlier:?}");
            }
        }
        assert!(Step::BackInService.next().is_empty() && Step::Cancelled.next().is_empty());
        // Once the patient is in the unit, the job can only end at a facility.
        assert!(!Step::LeftScene.next().contains(&Step::Cancelled));
    }

    #[test]
    fn cancelling_before_the_patient_requeues_the_call() {
        assert_eq!(
            call_effect(Step::EnRoute, Step::Cancelled),
            CallEffect::Requeue
        );
        assert_eq!(
            call_effect(Step::AtPatient, Step::Cancelled),
            CallEffect::Close(CallStatus::Dibatalkan)
        );
        assert_eq!(
            call_effect(Step::AtFacility, Step::HandedOver),
            CallEffect::Close(CallStatus::Selesai)
        );
        assert_eq!(call_effect(Step::Assigned, Step::EnRoute), CallEffect::None);
        for step in STEPS {
            assert_eq!(Step::parse(step.name()), Some(step));
        }
    }
}

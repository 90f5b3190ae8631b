//! The retry rule (pingora's, widened as nginx does for idempotent
//! requests): what a lost request may do next, from how it was lost, on
//! which kind of connection, and what kind of request it is.

/// What became of a request on one connection, as the retry rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing of it reached the backend.
    Unsent,
    /// It was sent, and the connection closed or was reset before any
    /// byte of an answer.
    SentUnanswered,
    /// The backend answered too late or with something that is not HTTP.
    Failed,
}

/// What the retry rule does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send the request again on a new connection; `blame` tells passive
    /// health the backend failed.
    Retry {
        /// Whether the backend is to blame.
        blame: bool,
    },
    /// Answer the client with the failure (the backend is blamed).
    Fail,
}

/// The retry rule (see the module header): what to do after `outcome`
/// on a `reused` or new connection, for a request that is `bodiless` and
/// `idempotent` or not.
#[must_use]
pub const fn next(outcome: Outcome, reused: bool, bodiless: bool, idempotent: bool) -> Next {
    match outcome {
        Outcome::Unsent => Next::Retry { blame: false },
        Outcome::SentUnanswered if bodiless && idempotent => Next::Retry { blame: !reused },
        Outcome::SentUnanswered | Outcome::Failed => Next::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::{Next, Outcome, next};

    #[test]
    fn the_retry_decision_table() {
        use Outcome::{Failed, SentUnanswered, Unsent};
        let retry = Next::Retry { blame: false };
        let blamed = Next::Retry { blame: true };
        // (outcome, reused, bodiless, idempotent) -> next
        let table = [
            // Nothing reached the backend: any request, any connection.
            ((Unsent, true, false, false), retry),
            ((Unsent, false, false, false), retry),
            ((Unsent, true, true, true), retry),
            // Sent, closed before an answer: GET-like requests only.
            ((SentUnanswered, true, true, true), retry),
            ((SentUnanswered, false, true, true), blamed),
            ((SentUnanswered, true, false, true), Next::Fail),
            ((SentUnanswered, true, true, false), Next::Fail),
            ((SentUnanswered, false, false, false), Next::Fail),
            // Too slow or not HTTP: never repeated.
            ((Failed, true, true, true), Next::Fail),
            ((Failed, false, true, true), Next::Fail),
        ];
        for ((outcome, reused, bodiless, idempotent), want) in table {
            assert_eq!(
                next(outcome, reused, bodiless, idempotent),
                want,
                "{outcome:?} reused={reused} bodiless={bodiless} idempotent={idempotent}"
            );
        }
    }
}

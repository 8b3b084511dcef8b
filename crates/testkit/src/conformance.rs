//! The one conformance harness every API's suite uses.
//!
//! A suite is written once with [`conformance!`](crate::conformance!): the
//! cases are collected from their definitions (a case nobody lists still
//! runs), and every case becomes one test per component, so each runs against
//! every component the machine can run. A case may need capabilities
//! (`#[needs("ttl")]`); a component that lacks one reports the case as
//! skipped, by name, instead of passing silently.
//!
//! ```ignore
//! layotto_testkit::conformance! {
//!     subject: Arc<dyn StateStore>;
//!     components {
//!         in_memory: memory(), ["raw", "ttl"];
//!         #[cfg(feature = "redis")]
//!         redis: redis_backend::redis(), ["raw", "ttl"];
//!     }
//!     cases {
//!         async fn round_trip(store) { /* … */ }
//!         #[needs("ttl")]
//!         async fn ttl_expires(store) { /* … */ }
//!     }
//! }
//! ```

use std::future::Future;

use futures::future::BoxFuture;

/// One case of a suite: its name, the capabilities it needs, and its body.
pub struct Case<S> {
    pub name: &'static str,
    pub needs: &'static [&'static str],
    pub run: fn(S) -> BoxFuture<'static, ()>,
}

/// How a case went on one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// The component lacks these capabilities.
    Skipped(Vec<&'static str>),
    /// The case panicked; the panic message.
    Failed(String),
}

/// Runs one case on one component, catching a panic as [`Outcome::Failed`].
/// The subject is made only when the case runs.
pub async fn run_case<S, F>(capabilities: &[&str], case: &Case<S>, make: F) -> Outcome
where
    S: Send + 'static,
    F: Future<Output = S> + Send + 'static,
{
    let missing: Vec<&'static str> =
        case.needs.iter().copied().filter(|n| !capabilities.contains(n)).collect();
    if !missing.is_empty() {
        return Outcome::Skipped(missing);
    }
    let run = case.run;
    match tokio::spawn(async move { run(make.await).await }).await {
        Ok(()) => Outcome::Passed,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Outcome::Failed(message)
        }
        Err(e) => Outcome::Failed(format!("the case was cancelled: {e}")),
    }
}

/// Where skipped cases are also written, one line each, so the test command
/// can list them after the run (test runners hide a passing test's output).
pub const SKIP_LOG_ENV: &str = "LAYOTTO_SKIP_LOG";

/// What a generated test does with an outcome: a skip is printed loudly (and
/// appended to the file named by [`SKIP_LOG_ENV`]), a failure fails the test.
pub fn report(suite: &str, component: &str, case: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Passed => {}
        Outcome::Skipped(missing) => {
            let line = format!(
                "SKIPPED: {suite} conformance case '{case}' on '{component}': the component lacks {}",
                missing.join(", ")
            );
            eprintln!("{line}");
            if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
                use std::io::Write;
                let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
                if let Ok(mut file) = file {
                    let _ = writeln!(file, "{line}");
                }
            }
        }
        Outcome::Failed(message) => {
            panic!("{suite} conformance case '{case}' failed on '{component}': {message}")
        }
    }
}

/// Every case of a suite on one component, one after another.
pub async fn run_suite<S, F, Fut>(
    capabilities: &[&str],
    cases: &[Case<S>],
    make: F,
) -> Vec<(&'static str, Outcome)>
where
    S: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S> + Send + 'static,
{
    let mut outcomes = Vec::with_capacity(cases.len());
    for case in cases {
        outcomes.push((case.name, run_case(capabilities, case, make()).await));
    }
    outcomes
}

/// Defines a suite: its cases (collected into `cases::all()`) and one test
/// per case for each component. See the [module docs](crate::conformance).
#[macro_export]
macro_rules! conformance {
    (subject: $subject:ty; components { $($components:tt)* } cases { $($cases:tt)* }) => {
        $crate::__conformance_cases!($subject; $($cases)*);
        $crate::__conformance_components!($subject; [$($cases)*]; $($components)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($subject:ty; $( $(#[doc = $doc:literal])* $(#[needs($($cap:literal),*)])? async fn $name:ident ( $($arg:tt)* ) $body:block )*) => {
        /// The suite's cases, written once and run on every component.
        pub mod cases {
            #[allow(unused_imports)]
            use super::*;
            $( $(#[doc = $doc])* pub async fn $name($($arg)*: $subject) $body )*

            /// Every case above, collected from the definitions.
            pub fn all() -> Vec<$crate::conformance::Case<$subject>> {
                vec![$( $crate::conformance::Case {
                    name: stringify!($name),
                    needs: &[$($($cap),*)?],
                    run: |subject| Box::pin($name(subject)),
                } ),*]
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_components {
    ($subject:ty; $cases:tt; ) => {};
    ($subject:ty; $cases:tt; $(#[$attr:meta])* $component:ident : $make:expr, [$($capability:literal),*]; $($rest:tt)*) => {
        $(#[$attr])*
        mod $component {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_tests!($component; $make; [$($capability),*]; $cases);
        }
        $crate::__conformance_components!($subject; $cases; $($rest)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($component:ident; $make:expr; $capabilities:tt; [ $( $(#[doc = $doc:literal])* $(#[needs($($cap:literal),*)])? async fn $name:ident ( $($arg:tt)* ) $body:block )* ]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let case = super::cases::all().into_iter().find(|c| c.name == stringify!($name));
                let case = case.expect("every case is collected");
                let capabilities: &[&str] = &$capabilities;
                let outcome = $crate::conformance::run_case(capabilities, &case, async { $make.await }).await;
                $crate::conformance::report(env!("CARGO_PKG_NAME"), stringify!($component), stringify!($name), &outcome);
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_cases() -> Vec<Case<u32>> {
        vec![
            Case { name: "passes", needs: &[], run: |n| Box::pin(async move { assert_eq!(n, 7) }) },
            Case { name: "panics", needs: &[], run: |_| Box::pin(async { panic!("boom at step 3") }) },
            Case { name: "needs_ttl", needs: &["ttl"], run: |_| Box::pin(async {}) },
        ]
    }

    #[tokio::test]
    async fn a_panicking_case_fails_and_a_missing_capability_skips_by_name() {
        let outcomes = run_suite(&["etag"], &demo_cases(), || async { 7 }).await;
        assert_eq!(outcomes[0], ("passes", Outcome::Passed));
        assert_eq!(outcomes[1], ("panics", Outcome::Failed("boom at step 3".to_owned())));
        assert_eq!(outcomes[2], ("needs_ttl", Outcome::Skipped(vec!["ttl"])));
        // With the capability, the case runs.
        let with_ttl = run_case(&["ttl"], &demo_cases()[2], async { 7 }).await;
        assert_eq!(with_ttl, Outcome::Passed);
    }

    #[test]
    #[should_panic(expected = "conformance case 'panics' failed on 'memory': boom")]
    fn report_fails_the_test_on_failure() {
        report("demo", "memory", "panics", &Outcome::Failed("boom".to_owned()));
    }

    #[test]
    fn report_lets_skips_pass() {
        report("demo", "memory", "needs_ttl", &Outcome::Skipped(vec!["ttl"]));
    }

    crate::conformance! {
        subject: u32;
        components {
            seven: async { 7u32 }, ["odd"];
            eight: async { 8u32 }, [];
        }
        cases {
            /// Runs on both.
            async fn positive(n) {
                assert!(n > 0);
            }
            #[needs("odd")]
            async fn odd(n) {
                assert_eq!(n % 2, 1);
            }
        }
    }

    #[test]
    fn the_macro_collects_every_case() {
        let all = cases::all();
        let names: Vec<&str> = all.iter().map(|c| c.name).collect();
        assert_eq!(names, ["positive", "odd"]);
        assert_eq!(all[1].needs, ["odd"]);
    }
}

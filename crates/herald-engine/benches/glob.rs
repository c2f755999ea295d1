//! Glob matcher microbenchmarks: `cargo bench -p herald-engine --bench glob`.

use herald_engine::Glob;

fn main() {
    divan::main();
}

/// (pattern, subject) pairs: a literal-prefix pattern, a leading-star one, a class-heavy
/// one, and a near miss that makes the star backtrack.
const CASES: &[(&str, &str)] = &[
    ("user:*", "user:12345:events"),
    ("*:tag:p5", "evt:tag:p5"),
    ("h?llo*[a-z]*[0-9]", "hello-world-abc-7"),
    ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
];

#[divan::bench(args = 0..CASES.len())]
fn matches(bencher: divan::Bencher, case: usize) {
    let (pattern, subject) = CASES[case];
    let glob = Glob::new(pattern.as_bytes());
    bencher.bench(|| divan::black_box(&glob).matches(divan::black_box(subject.as_bytes())));
}

#[divan::bench(args = 0..CASES.len())]
fn compile(case: usize) -> Glob {
    Glob::new(divan::black_box(CASES[case].0.as_bytes()))
}

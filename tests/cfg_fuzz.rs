//! Random and mutated cfg text never panics the parser (nor shape inference, the layer table or the
//! weight-file size computation on whatever it accepts).

use mafat::model::cfg;
use mafat::model::weights::DarknetWeights;

/// SplitMix64, so failures reproduce from the printed case number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    include_str!("../src/model/cfgs/yolov2.cfg"),
    include_str!("../src/model/cfgs/yolov2-tiny.cfg"),
    include_str!("../src/model/cfgs/yolov3-tiny.cfg"),
];

const TOKENS: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "3",
    "-4",
    "99999999999999999999",
    "4294967297",
    "1048576",
    "1e9",
    "nan",
    "inf",
    "-0",
    ".5",
    "",
    "=",
    "==",
    "[",
    "]",
    "[net]",
    "[route]",
    "[shortcut]",
    "[reorg]",
    "[maxpool]",
    "[convolutional]",
    "[yolo]",
    "[region]",
    "[upsample]",
    "[avgpool]",
    "[softmax]",
    "layers=-1,-9",
    "layers=",
    "layers=,",
    "from=-100",
    "mask=7,8",
    "size=0",
    "stride=0",
    "padding=999",
    "groups=0",
    "filters=1048576",
    "width=1048576",
    "height=1",
    "channels=0",
    "classes=999999",
    "num=0",
    "anchors=1,2,3",
    "#",
    ";",
    "\n",
    "\t",
    "\u{feff}",
    "ünïcode",
    "\0",
    "activation=mish",
    "batch_normalize=2",
    "pad=1",
    "scale=-1",
    "temperature=0",
];

/// Returns whether the text parsed at its own size.
fn check(text: &str, case: usize) -> bool {
    let result = std::panic::catch_unwind(|| {
        let mut accepted = false;
        for size in [None, Some((1, 1)), Some((3, 5))] {
            if let Ok(net) = cfg::parse(text, "fuzz", size) {
                accepted |= size.is_none();
                let _ = net.table();
                let _ = net.macs();
                let _ = net.weight_bytes();
                let _ = DarknetWeights::body_bytes(&net);
                let _ = net.outputs();
                for i in 0..net.layers.len() {
                    let _ = net.sources(i);
                }
            }
        }
        accepted
    });
    match result {
        Ok(accepted) => accepted,
        Err(_) => panic!("case {case}: the parser panicked on:\n{text}"),
    }
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let n = lines.len();
        match rng.below(8) {
            0 if n > 0 => {
                lines.remove(rng.below(n));
            }
            1 if n > 0 => {
                let l = lines[rng.below(n)].clone();
                lines.insert(rng.below(n), l);
            }
            2 => {
                let tok = TOKENS[rng.below(TOKENS.len())].to_string();
                lines.insert(rng.below(n + 1), tok);
            }
            3 if n > 0 => {
                // Replace a value with a token.
                let i = rng.below(n);
                if let Some((k, _)) = lines[i].clone().split_once('=') {
                    lines[i] = format!("{k}={}", TOKENS[rng.below(TOKENS.len())]);
                }
            }
            4 if n > 0 => {
                // Flip bytes inside a line (kept valid UTF-8 by replacing with ASCII).
                let i = rng.below(n);
                let mut b: Vec<u8> = lines[i].bytes().collect();
                if !b.is_empty() {
                    let j = rng.below(b.len());
                    b[j] = b"0123456789-=[],#;x \t"[rng.below(20)];
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
            5 if n > 0 => lines.truncate(rng.below(n)),
            6 if n > 1 => {
                let (a, b) = (rng.below(n), rng.below(n));
                lines.swap(a, b);
            }
            _ => {
                let i = rng.below(n + 1);
                let junk: String = (0..rng.below(12))
                    .map(|_| (32 + rng.below(95)) as u8 as char)
                    .collect();
                lines.insert(i, junk);
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_darknet_cfgs_never_panic() {
    let mut rng = Rng(2024);
    let mut accepted = 0;
    for case in 0..3000 {
        let seed = SEEDS[case % SEEDS.len()];
        let text = mutate(&mut rng, seed);
        accepted += usize::from(check(&text, case));
    }
    // Both paths are exercised: many mutants still parse (shape inference runs), many are rejected.
    assert!(
        (300..2700).contains(&accepted),
        "{accepted} of 3000 accepted"
    );
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(7);
    for case in 0..3000 {
        let n = rng.below(40);
        let text: String = (0..n)
            .map(|_| {
                let t = TOKENS[rng.below(TOKENS.len())];
                if rng.below(3) == 0 {
                    format!("{t}\n")
                } else {
                    t.to_string()
                }
            })
            .collect();
        check(
            &format!("[net]\nwidth=8\nheight=8\nchannels=3\n{text}"),
            case,
        );
        check(&text, case);
    }
}

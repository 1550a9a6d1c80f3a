//! What the shipped `ibackup` binary must not contain: the simulated iPhone and its fixed
//! private keys live in the separate ibackup-sim package, and this test fails if they are ever
//! linked into `ibackup` again. (sim/tests/binary.rs checks that the same markers are found in
//! a binary that does link the simulator.)

#[test]
fn the_ibackup_binary_holds_none_of_the_simulators_keys() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_ibackup")).expect("read the ibackup binary");
    let markers = ibackup_sim::fixed_key_markers();
    assert_eq!(markers.len(), 4, "one marker per fixed key");
    for marker in markers {
        assert!(
            marker.len() >= 40,
            "{marker:?} is too short to be distinctive"
        );
        let found = binary
            .windows(marker.len())
            .position(|w| w == marker.as_bytes());
        assert_eq!(
            found, None,
            "the ibackup binary contains the simulator's fixed key line {marker}"
        );
    }
}

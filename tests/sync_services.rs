//! ibackup's clients for the services around a backup (`ibackup::device::services` and
//! `ibackup::device::backup_info`), against the simulated phone: the sync lock taken and given
//! back with the notifications in the order a phone expects, a second computer told that the
//! phone is busy, the phone's cancel and passcode notices handed over by the watch, and an
//! Info.plist gathered from the phone that ibackup's own reader reads back.
#![cfg(unix)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ibackup::backup::plists::parse_info;
use ibackup::device::backup_info;
use ibackup::device::lockdown::pair_record::PairRecord;
use ibackup::device::lockdown::{LockdownClient, PORT};
use ibackup::device::services::afc::{AfcClient, AfcStatus};
use ibackup::device::services::notification_proxy::{
    NotificationProxy, NotificationWatch, PhoneNotice, PASSCODE_PROMPT_SHOWN, SYNC_CANCEL_REQUEST,
    SYNC_DID_FINISH, SYNC_DID_START, SYNC_LOCK_REQUEST, SYNC_WILL_START,
};
use ibackup::device::services::sync_lock::{LockRetry, SyncLock};
use ibackup::device::transport::Transport;
use ibackup::device::DeviceError;
use plist::Value;
use support::{
    eventually, usb_device, usb_phone, MuxTransport, PairedSession, SimPhone, SIM_UDID as UDID,
};

/// The sync lock, taken in `s`.
fn acquire(s: &mut PairedSession, retry: LockRetry) -> Result<SyncLock, DeviceError> {
    SyncLock::acquire_with(&s.transport, &s.device, &mut s.lockdown, &s.record, retry)
}

#[test]
fn the_sync_lock_is_taken_and_given_back_in_the_order_a_phone_expects() {
    let phone = SimPhone::with_profile("default");
    let mut session = PairedSession::new(&phone);
    let lock = acquire(&mut session, LockRetry::default()).unwrap();
    assert!(phone.phone().sync_lock_held());
    eventually("the phone saw the three posts before the backup", || {
        phone.phone().posted_by_computer() == [SYNC_WILL_START, SYNC_LOCK_REQUEST, SYNC_DID_START]
    });
    lock.release().unwrap();
    assert!(!phone.phone().sync_lock_held(), "the lock is free again");
    eventually("the phone saw syncDidFinish last", || {
        phone.phone().posted_by_computer()
            == [
                SYNC_WILL_START,
                SYNC_LOCK_REQUEST,
                SYNC_DID_START,
                SYNC_DID_FINISH,
            ]
    });
}

#[test]
fn a_second_computer_is_told_another_program_is_syncing() {
    let phone = SimPhone::with_profile("default");
    let mut first = PairedSession::new(&phone);
    let held = acquire(&mut first, LockRetry::default()).unwrap();

    let mut second = PairedSession::new(&phone);
    let quick = LockRetry {
        attempts: 3,
        interval: Duration::from_millis(20),
    };
    let err = acquire(&mut second, quick)
        .err()
        .expect("the lock is taken");
    assert!(matches!(err, DeviceError::SyncBusy { .. }), "{err}");
    assert_eq!(err.code(), "device.sync_busy");
    assert!(
        err.to_string().contains("another program is syncing"),
        "{err}"
    );
    assert!(err.hint().contains("Finder"), "{}", err.hint());
    // The refused computer left the lock as it was.
    assert!(phone.phone().sync_lock_held());

    // Dropping the first lock gives it back; now the second computer gets it.
    drop(held);
    assert!(!phone.phone().sync_lock_held());
    let mut third = PairedSession::new(&phone);
    acquire(&mut third, quick).unwrap().release().unwrap();
    assert!(!phone.phone().sync_lock_held());
}

#[test]
fn a_lock_busy_for_a_while_is_waited_for() {
    let phone = SimPhone::builder()
        .profile_json(r#"{"sync_lock_busy_for": 4}"#)
        .start();
    let mut session = PairedSession::new(&phone);
    let started = Instant::now();
    let lock = acquire(&mut session, LockRetry::default()).unwrap();
    // Four refusals, 0.2 s apart.
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(phone.phone().sync_lock_held());
    lock.release().unwrap();
}

#[test]
fn the_watch_hands_over_the_phones_cancel_and_passcode_notices() {
    let phone = SimPhone::with_profile("default");
    let mut session = PairedSession::new(&phone);
    let proxy = NotificationProxy::open(
        &session.transport,
        &session.device,
        &mut session.lockdown,
        &session.record,
    )
    .unwrap();
    let watch = NotificationWatch::start(proxy).unwrap();
    // The phone relays only what was observed before it posted: post until one arrives.
    let mut notices = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while notices.is_empty() && Instant::now() < until {
        phone.phone().post_notification(PASSCODE_PROMPT_SHOWN);
        std::thread::sleep(Duration::from_millis(100));
        notices.extend(std::iter::from_fn(|| watch.try_notice()));
    }
    assert!(
        notices.iter().all(|n| *n == PhoneNotice::PasscodePrompt),
        "{notices:?}"
    );
    assert!(!notices.is_empty());
    phone.phone().post_notification(SYNC_CANCEL_REQUEST);
    eventually("the cancel request came through", || {
        std::iter::from_fn(|| watch.try_notice()).any(|n| n == PhoneNotice::CancelRequest)
    });
    assert_eq!(watch.failure(), None);
    let started = Instant::now();
    watch.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_info_plist_gathered_from_the_phone_reads_back() {
    let phone = SimPhone::builder()
        .profile_json(
            r#"{"name": "Test iPhone", "imei": "350000000000001", "phone_number": "+1 555 0100"}"#,
        )
        .start();
    let mut session = PairedSession::new(&phone);
    let facts = backup_info::gather(
        &session.transport,
        &session.device,
        &mut session.lockdown,
        &session.record,
    )
    .unwrap();
    let profile = phone.phone().profile().clone();
    assert_eq!(facts.udid, UDID);
    assert_eq!(facts.device_name.as_deref(), Some("Test iPhone"));
    assert_eq!(facts.imei.as_deref(), Some("350000000000001"));
    assert_eq!(facts.phone_number.as_deref(), Some("+1 555 0100"));
    // The profile has no SIM card number: left out.
    assert_eq!(facts.iccid, None);
    assert_eq!(
        facts.min_itunes_version.as_deref(),
        Some(profile.min_itunes_version.as_str())
    );
    // The phone keeps none of the iTunes files: "not found" is an answer, not an error.
    assert!(facts.itunes_files.is_empty());
    assert_eq!(facts.ibooks_data, None);
    assert_eq!(facts.guid.len(), 32);

    let info = backup_info::build(&facts, SystemTime::now());
    assert_eq!(info["Phone Number"].as_string(), Some("+1 555 0100"));
    assert_eq!(info["IMEI"].as_string(), Some("350000000000001"));
    assert!(!info.contains_key("ICCID"));
    assert_eq!(info["Target Type"].as_string(), Some("Device"));
    let installed: Vec<&str> = info["Installed Applications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_string)
        .collect();
    let expected: Vec<&str> = profile.apps.iter().map(|a| a.bundle_id.as_str()).collect();
    assert_eq!(installed, expected);

    let mut bytes = Vec::new();
    Value::Dictionary(info)
        .to_writer_binary(&mut bytes)
        .unwrap();
    let read = parse_info(&bytes).unwrap();
    assert_eq!(read.unique_identifier.as_deref(), Some(UDID));
    assert_eq!(read.device_name.as_deref(), Some("Test iPhone"));
    assert_eq!(
        read.product_type.as_deref(),
        Some(profile.product_type.as_str())
    );
    assert_eq!(read.itunes_version, Some(profile.min_itunes_version));
    assert_eq!(read.installed_applications, expected);
}

#[test]
fn afc_answers_about_files_the_phone_does_not_have() {
    let phone = SimPhone::with_profile("default");
    let mut session = PairedSession::new(&phone);
    let mut afc = AfcClient::open(
        &session.transport,
        &session.device,
        &mut session.lockdown,
        &session.record,
    )
    .unwrap();
    assert_eq!(
        afc.read_file("/iTunes_Control/iTunes/iTunesPrefs", 1024)
            .unwrap(),
        None
    );
    assert_eq!(afc.file_info("/nowhere").unwrap(), None);
    let err = afc.read_file("/iTunes_Control/iTunes", 1024).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Afc {
                status: AfcStatus::ObjectIsDirectory,
                ..
            }
        ),
        "{err}"
    );
}

/// Direct USB to an emulated phone: the host's side of the mux as a transport.
#[test]
fn over_direct_usb_the_watch_waits_while_the_lock_is_taken_and_given_back() {
    let (mux, phone) = usb_phone();
    let transport = MuxTransport(Arc::clone(&mux));
    let record = PairRecord::from_plist(&phone.pair_record(UDID).unwrap(), "sim").unwrap();
    let mut lockdown = LockdownClient::new(transport.connect(&usb_device(), PORT).unwrap());
    lockdown.start_session(&record).unwrap();

    // The watch's thread sits in a read on one connection while the lock's requests go over
    // the others on the same cable.
    let proxy = NotificationProxy::open(&transport, &usb_device(), &mut lockdown, &record).unwrap();
    let watch = NotificationWatch::start(proxy).unwrap();
    let lock = SyncLock::acquire(&transport, &usb_device(), &mut lockdown, &record).unwrap();
    assert!(phone.sync_lock_held());
    let until = Instant::now() + Duration::from_secs(10);
    let mut cancelled = false;
    while !cancelled && Instant::now() < until {
        phone.post_notification(SYNC_CANCEL_REQUEST);
        std::thread::sleep(Duration::from_millis(100));
        cancelled =
            std::iter::from_fn(|| watch.try_notice()).any(|n| n == PhoneNotice::CancelRequest);
    }
    assert!(cancelled, "the cancel request never came through");
    lock.release().unwrap();
    assert!(!phone.sync_lock_held());
    assert_eq!(
        phone.posted_by_computer(),
        [
            SYNC_WILL_START,
            SYNC_LOCK_REQUEST,
            SYNC_DID_START,
            SYNC_DID_FINISH
        ]
    );
    let started = Instant::now();
    watch.stop();
    assert!(started.elapsed() < Duration::from_secs(2));
}

//! `External<T>`: a random id on first serialization, kept across updates
//! (created_at kept, updated_at moved), and kept by values loaded from a reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::{Deserialize, Serialize};
use toast::{External, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    bio: String,
    visits: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Account {
    owner: String,
    profile: External<Profile>,
}

fn profile_ref(json: &str) -> toast::Reference {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    serde_json::from_value(v["profile"].clone()).unwrap()
}

#[tokio::test]
async fn id_is_assigned_once_and_kept_across_updates() {
    let store = Store::memory();
    let mut account = Account {
        owner: "ada".into(),
        profile: External::new(Profile {
            bio: "first".into(),
            visits: 0,
        }),
    };
    assert_eq!(account.profile.id(), None);
    let first = toast::scope(store.clone(), toast::to_json(&account))
        .await
        .unwrap()
        .unwrap();
    let id = account
        .profile
        .id()
        .expect("id assigned on first serialization");
    let reference = profile_ref(&first);
    assert_eq!(reference.id, id);
    assert_eq!(reference.class_name, "Profile");
    assert_eq!(account.profile.reference(), Some(reference.clone()));
    let before = store.record(&reference).await.unwrap();

    // Timestamps have microsecond resolution in some backends: make the update observable.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    account.profile.visits += 1;
    account.profile.bio = "second".into();
    let second = toast::scope(store.clone(), toast::to_json(&account))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(profile_ref(&second).id, id, "same id after a change");
    let after = store.record(&reference).await.unwrap();
    assert_eq!(after.created_at, before.created_at, "created_at kept");
    assert!(after.updated_at > before.updated_at, "updated_at moved");
    let stored: Profile = store.get(&reference).await.unwrap();
    assert_eq!(
        stored,
        Profile {
            bio: "second".into(),
            visits: 1
        }
    );
}

#[tokio::test]
async fn loaded_values_keep_their_id() {
    let store = Store::memory();
    let account = Account {
        owner: "bob".into(),
        profile: External::new(Profile {
            bio: "b".into(),
            visits: 3,
        }),
    };
    let json = toast::scope(store.clone(), toast::to_json(&account))
        .await
        .unwrap()
        .unwrap();
    let mut loaded: Account = toast::scope(store.clone(), toast::from_json(&json))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.profile.id(), account.profile.id());
    assert_eq!(*loaded.profile, *account.profile);
    // Updating the loaded value writes to the same record.
    loaded.profile.visits = 4;
    let json2 = toast::scope(store.clone(), toast::to_json(&loaded))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(json, json2);
    let reference = profile_ref(&json);
    assert_eq!(store.get::<Profile>(&reference).await.unwrap().visits, 4);
}

#[tokio::test]
async fn distinct_externals_with_equal_values_get_distinct_ids() {
    let store = Store::memory();
    let a = External::new(Profile {
        bio: "x".into(),
        visits: 1,
    });
    let b = External::new(Profile {
        bio: "x".into(),
        visits: 1,
    });
    toast::scope(store.clone(), toast::to_json(&(&a, &b)))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(a, b, "equality compares values, not ids");
    assert_eq!(store.stats().records_saved, 2);
}

#[tokio::test]
async fn with_id_into_inner_and_deref() {
    let id = uuid::Uuid::new_v4();
    let mut e = External::with_id(vec![1, 2], id);
    e.push(3);
    assert_eq!(e.len(), 3);
    assert_eq!(e.id(), Some(id));
    assert_eq!(e.clone().id(), Some(id));
    assert_eq!(e.into_inner(), vec![1, 2, 3]);
}

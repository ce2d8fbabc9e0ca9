//! The feed and the installer downloads: ranges, SHA-256, and the download faults.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::FAST;
use crate::support::Sim;

#[tokio::test]
async fn the_feed_is_served_in_its_unsorted_order() {
    let spec = format!(
        "{FAST}[feed]\nversions = [{{ Version = \"2024.2.9409\", Released = \"2024-06-10\" }}, {{ Version = \"2024.1.10\", Released = \"2024-03-11\" }}, {{ Version = \"2024.2.100\", Released = \"2024-05-01\" }}]\n"
    );
    let sim = Sim::start(&spec).await;
    let response = sim
        .client
        .get(format!("{}/download/upgrade/v3", sim.feed))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let feed: Value = response.json().await.unwrap();
    assert_eq!(
        feed,
        json!([
            {"Version": "2024.2.9409", "Released": "2024-06-10"},
            {"Version": "2024.1.10", "Released": "2024-03-11"},
            {"Version": "2024.2.100", "Released": "2024-05-01"}
        ])
    );
}

const SIZE: u64 = 300_000;

fn download_spec() -> String {
    format!("{FAST}[installer]\nsize = {SIZE}\n")
}

fn msi_url(sim: &Sim, version: &str) -> String {
    format!("{}/octopus/Octopus.{version}-x64.msi", sim.feed)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body as far as it arrives, and whether the transfer failed.
async fn body(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

#[tokio::test]
async fn downloads_stream_the_installer_with_ranges_and_its_sha256() {
    let sim = Sim::start(&download_spec()).await;
    let url = msi_url(&sim, "2024.2.9409");
    let response = sim.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        SIZE.to_string().as_str()
    );
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    let header_sha = response.headers()["x-amz-meta-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let (full, failed) = body(response).await;
    assert!(!failed);
    assert_eq!(full.len() as u64, SIZE);
    assert_eq!(sha(&full), header_sha);
    assert!(full.starts_with(b"OCTOUP-SIM-MSI/1 version=2024.2.9409 size=300000\n"));
    let file = sim.dir().join("Octopus.2024.2.9409-x64.msi");
    std::fs::write(&file, &full).unwrap();
    assert_eq!(
        octoup_sim::installer::validate(&file).unwrap(),
        "2024.2.9409"
    );

    let head = sim.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], SIZE.to_string().as_str());
    assert_eq!(head.headers()["x-amz-meta-sha256"], header_sha.as_str());

    let resumed = sim
        .client
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(
        resumed.headers()["content-range"],
        format!("bytes 1000-{}/{SIZE}", SIZE - 1).as_str()
    );
    assert_eq!(
        resumed.headers()["content-length"],
        (SIZE - 1000).to_string().as_str()
    );
    assert_eq!(body(resumed).await.0, &full[1000..]);
    let part = sim
        .client
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), &full[10..20]);

    let beyond = sim
        .client
        .get(&url)
        .header("Range", format!("bytes={SIZE}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{SIZE}").as_str()
    );

    // The installed version downloads too (for rollback); an unknown one does not.
    assert_eq!(
        sim.client
            .head(msi_url(&sim, "2024.1.10"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        sim.client
            .get(msi_url(&sim, "2031.1.1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        sim.client
            .get(format!("{}/octopus/setup.exe", sim.feed))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn download_faults_drop_corrupt_ignore_range_and_hang() {
    let sim = Sim::start(&download_spec()).await;
    let url = msi_url(&sim, "2024.2.9409");
    let good = sim
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    // A HEAD leaves body faults for the GET.
    sim.fault("download", "drop:100000", None, 1);
    assert_eq!(sim.client.head(&url).send().await.unwrap().status(), 200);
    let response = sim.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        SIZE.to_string().as_str()
    );
    let (bytes, failed) = body(response).await;
    assert!(
        failed,
        "a dropped connection must not look like a clean end"
    );
    assert_eq!(bytes.len(), 100_000);
    assert_eq!(bytes, &good[..100_000]);

    sim.fault("download", "corrupt:5000", None, 1);
    let response = sim.client.get(&url).send().await.unwrap();
    let header_sha = response.headers()["x-amz-meta-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(header_sha, sha(&good), "the header keeps the true hash");
    assert_ne!(sha(&bytes), header_sha);
    let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != good[i]).collect();
    assert_eq!(differing, [5000]);

    sim.fault("download", "ignore-range", None, 1);
    let response = sim
        .client
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), good);

    sim.fault("download", "http:503", None, 1);
    assert_eq!(sim.client.get(&url).send().await.unwrap().status(), 503);
    assert_eq!(
        sim.client.get(&url).send().await.unwrap().status(),
        200,
        "times = 1"
    );

    sim.fault("download", "hang", None, 1);
    let error = sim
        .client
        .get(&url)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let fired: Vec<String> = sim
        .history()
        .iter()
        .filter(|e| e["kind"] == "fault-fired")
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fired,
        [
            "drop:100000",
            "corrupt:5000",
            "ignore-range",
            "http:503",
            "hang"
        ]
    );
}

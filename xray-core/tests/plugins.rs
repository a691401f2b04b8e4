//! Plugins against local servers that answer like the EC2 and ECS metadata endpoints, and
//! files laid out like Elastic Beanstalk and EKS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xray_core::emitter::MemoryEmitter;
use xray_core::plugins::{resolve, Plugin, PluginSources};
use xray_core::sampling::{Sampler, SamplingDecision, SamplingRequest};
use xray_core::Recorder;

/// One parsed request: method, path and headers (lower-case names).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// A loopback HTTP server answering with `answer(request) -> Option<(status, body)>`;
/// `None` means: hang without answering for two seconds.
fn server(
    answer: impl Fn(&Seen) -> Option<(u16, String)> + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let answer = answer.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        let k = k.trim().to_ascii_lowercase();
                        if k == "content-length" {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k, v.trim().to_string()));
                    }
                }
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                let req = Seen {
                    method,
                    path,
                    headers,
                };
                log.lock().unwrap().push(req.clone());
                match answer(&req) {
                    Some((status, body)) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    None => std::thread::sleep(Duration::from_secs(2)),
                }
            });
        }
    });
    (url, seen)
}

const IDENTITY: &str = r#"{"instanceId":"i-0123456789abcdef0","availabilityZone":"eu-west-1a","instanceType":"t3.micro","imageId":"ami-0abc","region":"eu-west-1"}"#;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xray-plugins-{tag}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fastrand_u64() -> u64 {
    xray_core::EntityId::new().as_u64()
}

fn sources() -> PluginSources {
    let mut s = PluginSources::default();
    let none = temp_dir("none");
    s.imds_endpoint = "http://127.0.0.1:1".into();
    s.ecs_metadata_uri = None;
    s.beanstalk_config = none.join("missing.conf");
    s.eks_token = none.join("missing-token");
    s.eks_cluster_name = None;
    s.cgroup = none.join("missing-cgroup");
    s.hostname = Some("pod-7f9c".into());
    s
}

#[test]
fn ec2_reads_the_identity_document_with_an_imdsv2_token() {
    let (url, seen) = server(|r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", "/latest/api/token") => Some((200, "TOKEN-abc".into())),
        ("GET", "/latest/dynamic/instance-identity/document") => {
            let ok = r
                .headers
                .iter()
                .any(|(k, v)| k == "x-aws-ec2-metadata-token" && v == "TOKEN-abc");
            Some(if ok {
                (200, IDENTITY.into())
            } else {
                (401, String::new())
            })
        }
        _ => Some((404, String::new())),
    });
    let mut s = sources();
    s.imds_endpoint = url;
    let env = resolve(&[Plugin::Ec2], &s);
    assert_eq!(env.origin.as_deref(), Some("AWS::EC2::Instance"));
    let ec2 = &env.aws["ec2"];
    assert_eq!(ec2["instance_id"], "i-0123456789abcdef0");
    assert_eq!(ec2["availability_zone"], "eu-west-1a");
    assert_eq!(ec2["instance_size"], "t3.micro");
    assert_eq!(ec2["ami_id"], "ami-0abc");
    let seen = seen.lock().unwrap();
    let put = &seen[0];
    assert!(put
        .headers
        .iter()
        .any(|(k, v)| k == "x-aws-ec2-metadata-token-ttl-seconds" && v == "60"));
}

#[test]
fn ec2_falls_back_to_imdsv1_without_a_token_endpoint() {
    let (url, _) = server(|r| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/latest/dynamic/instance-identity/document") => Some((200, IDENTITY.into())),
        _ => Some((405, String::new())),
    });
    let mut s = sources();
    s.imds_endpoint = url;
    let env = resolve(&[Plugin::Ec2], &s);
    assert_eq!(env.aws["ec2"]["instance_id"], "i-0123456789abcdef0");
}

#[test]
fn hanging_metadata_service_gives_up_within_its_timeouts() {
    let (url, _) = server(|_| None);
    let mut s = sources();
    s.imds_endpoint = url;
    let start = Instant::now();
    let env = resolve(&[Plugin::Ec2], &s);
    assert!(env.aws.is_empty());
    assert!(env.origin.is_none());
    // Two calls of 400 ms at most; a guard against waiting on the 2 s hang, not a benchmark.
    assert!(
        start.elapsed() < Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn ecs_reads_container_and_task_metadata() {
    let (url, _) = server(|r| {
        match r.path.as_str() {
        "/v4/abc" => Some((200, r#"{"DockerId":"d0cker","Name":"web","ContainerARN":"arn:aws:ecs:eu-west-1:1:container/x"}"#.into())),
        "/v4/abc/task" => Some((200, r#"{"TaskARN":"arn:aws:ecs:eu-west-1:1:task/t","Family":"web","Cluster":"prod","LaunchType":"FARGATE","AvailabilityZone":"eu-west-1b"}"#.into())),
        _ => Some((404, String::new())),
    }
    });
    let mut s = sources();
    s.ecs_metadata_uri = Some(format!("{url}/v4/abc"));
    let env = resolve(&[Plugin::Ec2, Plugin::Ecs], &s);
    assert_eq!(env.origin.as_deref(), Some("AWS::ECS::Container"));
    let ecs = &env.aws["ecs"];
    assert_eq!(ecs["container"], "web");
    assert_eq!(ecs["container_id"], "d0cker");
    assert_eq!(ecs["task_arn"], "arn:aws:ecs:eu-west-1:1:task/t");
    assert_eq!(ecs["launch_type"], "FARGATE");
    assert!(env.aws.get("ec2").is_none(), "EC2 was unreachable here");
}

#[test]
fn beanstalk_and_eks_read_their_files_and_eks_wins_the_origin() {
    let dir = temp_dir("files");
    std::fs::write(
        dir.join("environment.conf"),
        r#"{"deployment_id":23,"version_label":"v7","environment_name":"orders-prod"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("token"), "secret-token").unwrap();
    let id = "a".repeat(12) + &"0123456789abcdef".repeat(4)[12..];
    let id = &("f".repeat(64))[..64 - id.len().min(64)]
        .to_string()
        .chars()
        .chain(id.chars())
        .collect::<String>()[..64];
    std::fs::write(
        dir.join("cgroup"),
        format!("12:memory:/kubepods/burstable/pod1/{id}\n0::/\n"),
    )
    .unwrap();
    let mut s = sources();
    s.beanstalk_config = dir.join("environment.conf");
    s.eks_token = dir.join("token");
    s.cgroup = dir.join("cgroup");
    s.eks_cluster_name = Some("prod-cluster".into());
    let env = resolve(&[Plugin::ElasticBeanstalk, Plugin::Eks], &s);
    assert_eq!(env.origin.as_deref(), Some("AWS::EKS::Container"));
    assert_eq!(
        env.aws["elastic_beanstalk"]["environment_name"],
        "orders-prod"
    );
    assert_eq!(env.aws["elastic_beanstalk"]["deployment_id"], 23);
    let eks = &env.aws["eks"];
    assert_eq!(eks["cluster_name"], "prod-cluster");
    assert_eq!(eks["pod"], "pod-7f9c");
    assert_eq!(eks["container_id"], id);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn broken_or_missing_sources_contribute_nothing() {
    let dir = temp_dir("broken");
    std::fs::write(dir.join("environment.conf"), "{not json").unwrap();
    let mut s = sources();
    s.beanstalk_config = dir.join("environment.conf");
    s.ecs_metadata_uri = Some("https://not-plain-http/v4".into());
    let env = resolve(
        &[
            Plugin::Ec2,
            Plugin::Ecs,
            Plugin::Eks,
            Plugin::ElasticBeanstalk,
        ],
        &s,
    );
    assert!(env.aws.is_empty());
    assert!(env.origin.is_none());
    let _ = std::fs::remove_dir_all(dir);
}

#[derive(Debug, Default)]
struct SeeServiceType(Mutex<Vec<Option<String>>>);
impl Sampler for SeeServiceType {
    fn should_sample(&self, r: &SamplingRequest<'_>) -> SamplingDecision {
        self.0
            .lock()
            .unwrap()
            .push(r.service_type.map(str::to_string));
        SamplingDecision::new(true)
    }
}

#[test]
fn segments_carry_plugin_data_and_the_sampler_sees_the_origin() {
    let (url, _) = server(|r| match (r.method.as_str(), r.path.as_str()) {
        ("PUT", _) => Some((200, "T".into())),
        (_, "/latest/dynamic/instance-identity/document") => Some((200, IDENTITY.into())),
        _ => Some((404, String::new())),
    });
    let mut s = sources();
    s.imds_endpoint = url;
    let sampler = Arc::new(SeeServiceType::default());
    let emitter = MemoryEmitter::new();
    let r = Recorder::builder()
        .sampler_arc(sampler.clone())
        .emitter(emitter.clone())
        .plugins([Plugin::Ec2])
        .plugin_sources(s)
        .ignore_env()
        .build()
        .unwrap();
    assert!(r.wait_for_plugins(Duration::from_secs(5)));
    r.begin_segment("svc", None).end();
    let d = &emitter.documents()[0];
    assert_eq!(d.origin.as_deref(), Some("AWS::EC2::Instance"));
    assert_eq!(d.aws["ec2"]["instance_id"], "i-0123456789abcdef0");
    assert_eq!(d.aws["xray"]["sdk"], "X-Ray for Rust");
    assert_eq!(
        sampler.0.lock().unwrap()[0].as_deref(),
        Some("AWS::EC2::Instance")
    );
}

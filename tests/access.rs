//! `access:` - how people reach the UI - in the rendered templates, and deployed into
//! the local AWS emulator (tests/aws_emulator) in each mode. The tunnel's command,
//! `airflow-stack ui`, is run against the deployed stack up to the session it would
//! start: the task lookup, the ECS Exec checks and the exact `aws ssm start-session`
//! command (run through a stand-in `aws` that records its arguments). The balancer's
//! behaviour with a real api-server is in the end-to-end run
//! (tests/e2e/test_access_e2e.py).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::emulator::{target_dir, Emulator};
use common::{cli, root, synth};
use serde_json::Value;

/// stacks/dev.yaml with its `access:` section replaced.
fn dev_with_access(dir: &Path, access: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("stacks/dev.yaml")).unwrap();
    let tunnel = "access:\n  mode: tunnel\n";
    assert!(text.contains(tunnel), "stacks/dev.yaml has no {tunnel:?}");
    let path = dir.join("stack.yaml");
    std::fs::write(&path, text.replace(tunnel, access)).unwrap();
    path
}

fn template(file: &Path) -> Value {
    serde_json::from_str(&synth(file, "json")).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn of_type<'a>(t: &'a Value, type_name: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == type_name)
        .collect()
}

/// `(port, source)` of every ingress rule into the group `group`.
fn ingress_into(t: &Value, group: &str) -> Vec<(i64, String)> {
    let mut rules: Vec<(i64, String)> = of_type(t, "AWS::EC2::SecurityGroupIngress")
        .into_iter()
        .map(|(_, r)| &r["Properties"])
        .filter(|p| p["GroupId"]["Fn::GetAtt"][0] == group)
        .map(|p| {
            let source = p["CidrIp"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| p["SourceSecurityGroupId"].as_str().map(str::to_owned))
                .unwrap_or_else(|| {
                    p["SourceSecurityGroupId"]["Fn::GetAtt"][0]
                        .as_str()
                        .unwrap()
                        .to_owned()
                });
            (p["FromPort"].as_i64().unwrap(), source)
        })
        .collect();
    rules.sort();
    rules
}

fn base_urls(t: &Value) -> Vec<String> {
    let mut urls: Vec<String> = common::containers(t)
        .into_iter()
        .filter_map(|(_, c)| {
            c["Environment"]
                .as_array()?
                .iter()
                .find(|e| e["Name"] == "AIRFLOW__API__BASE_URL")
                .map(|e| e["Value"].as_str().unwrap().to_owned())
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[test]
fn the_balancer_serves_https_only_from_the_allow_list_and_checks_airflows_health() {
    let t = template(&root().join("stacks/prod.yaml"));
    let r = &t["Resources"];
    // HTTP only redirects, permanently, to HTTPS.
    let http = &r["HttpListener"]["Properties"];
    assert_eq!(http["Protocol"], "HTTP");
    assert_eq!(http["DefaultActions"][0]["Type"], "redirect");
    assert_eq!(
        http["DefaultActions"][0]["RedirectConfig"],
        serde_json::json!({"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"})
    );
    // HTTPS forwards to the api-server's targets with the stack's certificate.
    let https = &r["HttpsListener"]["Properties"];
    assert_eq!(https["Protocol"], "HTTPS");
    assert_eq!(https["SslPolicy"], "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(
        https["Certificates"][0]["CertificateArn"]["Ref"],
        "Certificate"
    );
    assert_eq!(
        https["DefaultActions"][0]["TargetGroupArn"]["Ref"],
        "ApiServerTargetGroup"
    );
    let cert = &r["Certificate"]["Properties"];
    assert_eq!(cert["ValidationMethod"], "DNS");
    assert_eq!(
        cert["DomainValidationOptions"][0]["HostedZoneId"],
        "Z0123456789EXAMPLEZONE"
    );
    assert_eq!(
        r["UiDnsRecord"]["Properties"]["AliasTarget"]["DNSName"]["Fn::GetAtt"],
        serde_json::json!(["LoadBalancer", "DNSName"])
    );
    // Health: Airflow's own endpoint, 200 only.
    let tg = &r["ApiServerTargetGroup"]["Properties"];
    assert_eq!(tg["HealthCheckPath"], "/api/v2/monitor/health");
    assert_eq!(tg["Matcher"]["HttpCode"], "200");
    assert_eq!(
        (tg["TargetType"].as_str(), tg["Port"].as_i64()),
        (Some("ip"), Some(8080))
    );
    assert_eq!(r["LoadBalancer"]["Properties"]["Scheme"], "internal");
    // The api-server registers in it once the listener exists, with a grace period.
    let service = &r["ApiServerService"];
    let lb = &service["Properties"]["LoadBalancers"][0];
    assert_eq!(
        (lb["ContainerName"].as_str(), lb["ContainerPort"].as_i64()),
        (Some("api-server"), Some(8080))
    );
    assert!(service["DependsOn"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == "HttpsListener"));
    assert!(
        service["Properties"]["HealthCheckGracePeriodSeconds"]
            .as_i64()
            .unwrap()
            >= 60
    );
    assert_eq!(service["Properties"]["EnableExecuteCommand"], false);
    // Who gets in: the allow-list on 443 and 80; only the balancer (and the Airflow
    // peers) on the api-server's 8080; the balancer sends to 8080 of the api-server only.
    assert_eq!(
        ingress_into(&t, "LoadBalancerSecurityGroup"),
        vec![(80, "10.0.0.0/8".into()), (443, "10.0.0.0/8".into())]
    );
    let into_api = ingress_into(&t, "ApiServerSecurityGroup");
    assert!(
        into_api.contains(&(8080, "LoadBalancerSecurityGroup".into())),
        "{into_api:?}"
    );
    assert!(
        into_api.iter().all(|(_, from)| !from.contains('/')),
        "no CIDR reaches the api-server: {into_api:?}"
    );
    let egress = &r["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupEgress"];
    assert_eq!(egress.as_array().unwrap().len(), 1, "{egress}");
    assert_eq!(
        egress[0]["DestinationSecurityGroupId"]["Fn::GetAtt"][0],
        "ApiServerSecurityGroup"
    );
    assert_eq!(egress[0]["FromPort"], 8080);
    // Flower is not behind the balancer.
    assert!(!ingress_into(&t, "FlowerSecurityGroup")
        .iter()
        .any(|(p, _)| *p == 5555));
    // Airflow knows its URL, in every container; so does the output.
    assert_eq!(base_urls(&t), vec!["https://airflow.example.com/"]);
    assert_eq!(
        t["Outputs"]["UiUrl"]["Value"],
        "https://airflow.example.com/"
    );
    assert!(of_type(&t, "AWS::ElasticLoadBalancingV2::LoadBalancer").len() == 1);
}

#[test]
fn the_open_internet_needs_its_own_setting_and_is_visible_in_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let balancer = "access:\n  mode: load_balancer\n  scheme: internet-facing\n  domain: airflow.example.org\n  hosted_zone_id: Z0123456789EXAMPLEZONE\n";
    let file = dev_with_access(dir.path(), balancer);
    let out = cli().args(["synth"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("{}:", file.display())), "{said}");
    assert!(
        said.contains(
            "access.allowed_cidrs: an internet-facing balancer needs the CIDR blocks allowed in"
        ),
        "{said}"
    );
    assert!(out.stdout.is_empty(), "nothing rendered on bad input");

    let file = dev_with_access(
        dir.path(),
        &format!("{balancer}  open_to_the_whole_internet: true\n"),
    );
    let t = template(&file);
    assert_eq!(
        ingress_into(&t, "LoadBalancerSecurityGroup"),
        vec![(80, "0.0.0.0/0".into()), (443, "0.0.0.0/0".into())]
    );
    // Internet-facing: in the public subnets.
    let subnets = &t["Resources"]["LoadBalancer"]["Properties"]["Subnets"];
    assert_eq!(
        subnets,
        &serde_json::json!([{"Ref": "PublicSubnet1"}, {"Ref": "PublicSubnet2"}])
    );
}

#[test]
fn the_tunnel_is_ecs_exec_on_the_api_server_with_logged_sessions() {
    let t = template(&root().join("stacks/dev.yaml"));
    let r = &t["Resources"];
    // dev packs the api-server into the core task: that service gets ECS Exec, no other.
    for (id, service) in of_type(&t, "AWS::ECS::Service") {
        let exec = service["Properties"]["EnableExecuteCommand"]
            .as_bool()
            .unwrap();
        assert_eq!(exec, id == "CoreService", "{id}");
    }
    let exec = &r["Cluster"]["Properties"]["Configuration"]["ExecuteCommandConfiguration"];
    assert_eq!(exec["Logging"], "OVERRIDE");
    assert_eq!(
        exec["LogConfiguration"]["CloudWatchLogGroupName"]["Ref"],
        "ExecSessionLogGroup"
    );
    assert_eq!(
        r["ExecSessionLogGroup"]["Properties"]["RetentionInDays"],
        14
    );
    // The core task role has the agent's channels; no other role has them.
    for (id, role) in of_type(&t, "AWS::IAM::Role") {
        let has = role["Properties"]["Policies"]
            .to_string()
            .contains("ssmmessages:OpenDataChannel");
        assert_eq!(has, id == "CoreTaskRole", "{id}");
    }
    assert!(of_type(&t, "AWS::ElasticLoadBalancingV2::LoadBalancer").is_empty());
    assert_eq!(base_urls(&t), vec!["http://localhost:8080/"]);
    assert_eq!(t["Outputs"]["UiUrl"]["Value"], "http://localhost:8080/");
}

#[test]
fn in_vpc_opens_8080_and_flower_to_the_allow_list_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dev_with_access(
        dir.path(),
        "access:\n  mode: in_vpc\n  allowed_cidrs: [10.8.0.0/16]\n  allowed_security_groups: [sg-0a1b2c3d]\n",
    );
    let with_flower = std::fs::read_to_string(&file)
        .unwrap()
        .replace("flower: { enabled: false }", "flower: { enabled: true }");
    std::fs::write(&file, with_flower).unwrap();
    let t = template(&file);
    let into_api = ingress_into(&t, "ApiServerSecurityGroup");
    assert!(
        into_api.contains(&(8080, "10.8.0.0/16".into())),
        "{into_api:?}"
    );
    assert!(
        into_api.contains(&(8080, "sg-0a1b2c3d".into())),
        "{into_api:?}"
    );
    assert_eq!(
        ingress_into(&t, "FlowerSecurityGroup"),
        vec![(5555, "10.8.0.0/16".into()), (5555, "sg-0a1b2c3d".into())]
    );
    assert_eq!(base_urls(&t), vec!["http://api-server.airflow:8080/"]);
    // ECS Exec for Flower's own session (`ui --flower`) only; the api-server has none.
    for (id, service) in of_type(&t, "AWS::ECS::Service") {
        let flower = id.as_str() == "FlowerService";
        assert_eq!(
            service["Properties"]["EnableExecuteCommand"], flower,
            "{id}"
        );
    }
}

// --- deployed into the emulator ---------------------------------------------------------

struct Session {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Session {
    fn new() -> Session {
        Session {
            emulator: Emulator::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run_with(&self, args: &[&str], path: Option<&str>) -> Output {
        let mut cmd = self.emulator.cli(&target_dir());
        cmd.args(args);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        let out = cmd.output().expect("run airflow-stack");
        eprintln!("$ airflow-stack {}\n{}", args.join(" "), text(&out));
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    fn deploy(&self, file: &Path) {
        let file = file.to_str().unwrap();
        assert!(self.run(&["bootstrap", file]).status.success());
        let out = self.run(&["deploy", file, "--yes"]);
        assert!(out.status.success(), "deploy failed: {}", text(&out));
    }

    /// A boto3 script against the emulator as the operator; its stdout as JSON.
    fn python(&self, script: &str, args: &[&str]) -> Value {
        let prelude = "import boto3, json, sys\nboto3.setup_default_session(region_name='us-east-1')\ncfn = boto3.client('cloudformation')\nres = cfn.describe_stack_resources(StackName='airflow-dev')['StackResources'] if len(sys.argv) > 1 and sys.argv[1] == 'stack' else []\nphys = {r['LogicalResourceId']: r.get('PhysicalResourceId', '') for r in res}\n";
        let out = self.emulator.python(&format!("{prelude}{script}"), args);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

#[test]
fn the_tunnel_command_finds_the_running_api_server_and_runs_the_exact_session() {
    let s = Session::new();
    let dev = root().join("stacks/dev.yaml");
    let file = dev.to_str().unwrap();
    s.deploy(&dev);

    // No task runs yet: a clear message, exit 1.
    let out = s.run(&["ui", file, "--print-command"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no api-server task is running in service"),
        "{}",
        text(&out)
    );

    // The emulator runs the core service's task (the service scheduler of
    // ecs_service.py, with ECS Exec as ecs_exec.py models it).
    let started = s.python(
        r#"
import time, urllib.request
ecs = boto3.client('ecs')
cluster, service = phys['Cluster'], phys['CoreService'].rsplit('/', 1)[-1]
def call(method, path, body=None):
    req = urllib.request.Request(sys.argv[2] + path, method=method, data=json.dumps(body or {}).encode(), headers={'Content-Type': 'application/json'})
    return json.load(urllib.request.urlopen(req))
call('POST', '/_emulator/ecs-services', {'cluster': cluster, 'service': service})
for _ in range(100):
    tasks = call('GET', f'/_emulator/ecs-services/{cluster}/{service}')['tasks']
    if tasks:
        break
    time.sleep(0.1)
call('POST', f"/_emulator/ecs-tasks/{tasks[0]['taskId']}/running", {'ip': '10.40.0.10'})
t = ecs.describe_tasks(cluster=cluster, tasks=[tasks[0]['taskArn']])['tasks'][0]
api = next(c for c in t['containers'] if c['name'] == 'api-server')
print(json.dumps({'cluster': cluster, 'task': t['taskArn'].rsplit('/', 1)[-1], 'exec': t['enableExecuteCommand'],
                  'runtime': api['runtimeId'], 'agents': api['managedAgents'], 'secret': phys['AdminPasswordSecret']}, default=str))
"#,
        &["stack", &s.emulator.endpoint],
    );
    assert_eq!(started["exec"], true, "{started}");
    assert_eq!(started["agents"][0]["name"], "ExecuteCommandAgent");
    let target = format!(
        "ecs:{}_{}_{}",
        started["cluster"].as_str().unwrap(),
        started["task"].as_str().unwrap(),
        started["runtime"].as_str().unwrap()
    );
    let expected = vec![
        "aws",
        "ssm",
        "start-session",
        "--target",
        &target,
        "--document-name",
        "AWS-StartPortForwardingSession",
        "--parameters",
        r#"{"portNumber":["8080"],"localPortNumber":["8080"]}"#,
        "--region",
        "us-east-1",
    ];

    // --print-command: the command as one shell line.
    let out = s.run(&["ui", file, "--print-command"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.trim(),
        format!(
            "aws ssm start-session --target {target} --document-name AWS-StartPortForwardingSession --parameters '{}' --region us-east-1",
            expected[8]
        )
    );

    // Without Session Manager's plugin: how to install it, exit 1, before any AWS call.
    let bin = s.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let argv = s.dir.path().join("aws-argv.json");
    write_script(
        &bin.join("aws"),
        &format!(
            "#!/usr/bin/python3\nimport json, sys\njson.dump(sys.argv[1:], open({:?}, 'w'))\nprint('Starting session with SessionId: test')\n",
            argv.to_str().unwrap()
        ),
    );
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = s.run_with(&["ui", file], Some(&path));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("session-manager-plugin")
            && said.contains("session-manager-working-with-install-plugin.html"),
        "{said}"
    );
    assert!(!argv.exists(), "aws must not run without the plugin");

    // With it: the session runs with exactly these arguments; the output names the
    // URL and the secret, never the password.
    write_script(&bin.join("session-manager-plugin"), "#!/bin/sh\nexit 0\n");
    let out = s.run_with(&["ui", file], Some(&path));
    assert!(out.status.success(), "{}", text(&out));
    let ran: Vec<String> = serde_json::from_str(&std::fs::read_to_string(&argv).unwrap()).unwrap();
    assert_eq!(ran, expected[1..].to_vec());
    let said = text(&out);
    assert!(said.contains("http://localhost:8080/"), "{said}");
    assert!(said.contains(started["secret"].as_str().unwrap()), "{said}");
    let password = s.python(
        "sm = boto3.client('secretsmanager')\nprint(json.dumps(sm.get_secret_value(SecretId=phys['AdminPasswordSecret'])['SecretString']))",
        &["stack"],
    );
    let password = password.as_str().unwrap();
    assert!(password.len() >= 16, "the admin password was generated");
    assert!(
        !said.contains(password),
        "the password must never be printed"
    );
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_stack_behind_the_load_balancer_deploys_and_ui_points_at_its_url() {
    let s = Session::new();
    // The hosted zone exists before the stack, as the user's zone would.
    let zone = s.python(
        "r53 = boto3.client('route53')\nz = r53.create_hosted_zone(Name='example.com', CallerReference='access-test')\nprint(json.dumps(z['HostedZone']['Id'].rsplit('/', 1)[-1]))",
        &[],
    );
    let zone = zone.as_str().unwrap();
    let access = format!(
        "access:\n  mode: load_balancer\n  domain: airflow.example.com\n  hosted_zone_id: {zone}\n  allowed_cidrs: [10.0.0.0/8]\n"
    );
    let file = dev_with_access(s.dir.path(), &access);
    s.deploy(&file);
    let deployed = s.python(
        r#"
elb, r53 = boto3.client('elbv2'), boto3.client('route53')
out = {o['OutputKey']: o['OutputValue'] for o in cfn.describe_stacks(StackName='airflow-dev')['Stacks'][0].get('Outputs', [])}
lbs = elb.describe_load_balancers()['LoadBalancers']
listeners = elb.describe_listeners(LoadBalancerArn=lbs[0]['LoadBalancerArn'])['Listeners']
tgs = elb.describe_target_groups()['TargetGroups']
records = r53.list_resource_record_sets(HostedZoneId=sys.argv[2])['ResourceRecordSets']
print(json.dumps({'url': out.get('UiUrl'), 'scheme': lbs[0]['Scheme'],
  'listeners': sorted((l['Port'], l['Protocol']) for l in listeners),
  'health': [(t['HealthCheckPath'], t['Matcher']['HttpCode'], t['TargetType']) for t in tgs],
  'record': [r['Name'].rstrip('.') for r in records if r['Type'] == 'A'],
  'validation': [r['Name'].rstrip('.') for r in records if r['Type'] == 'CNAME']}))
"#,
        &["stack", zone],
    );
    assert_eq!(
        deployed["url"], "https://airflow.example.com/",
        "{deployed}"
    );
    assert_eq!(deployed["scheme"], "internal");
    assert_eq!(
        deployed["listeners"],
        serde_json::json!([[80, "HTTP"], [443, "HTTPS"]])
    );
    assert_eq!(
        deployed["health"],
        serde_json::json!([["/api/v2/monitor/health", "200", "ip"]])
    );
    // The alias record, and the certificate's DNS validation record, in the zone.
    assert_eq!(
        deployed["record"],
        serde_json::json!(["airflow.example.com"])
    );
    let validation = deployed["validation"].as_array().unwrap();
    assert!(
        validation.len() == 1
            && validation[0]
                .as_str()
                .unwrap()
                .ends_with(".airflow.example.com"),
        "{deployed}"
    );

    // `ui` is the tunnel's: here it says where the UI is, exit 2.
    let out = s.run(&["ui", file.to_str().unwrap(), "--print-command"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("access.mode: `ui` opens the tunnel of access.mode tunnel; this stack is load_balancer and served at https://airflow.example.com/"), "{}", text(&out));
}

/// Flower is never behind the balancer; in every mode its service runs with ECS Exec
/// and a task role with the agent's permissions only, and `ui --flower` forwards to its
/// 5555 through Session Manager.
#[test]
fn flower_is_reached_through_its_own_session_in_every_mode() {
    let s = Session::new();
    let zone = s.python(
        "r53 = boto3.client('route53')\nz = r53.create_hosted_zone(Name='example.com', CallerReference='flower-test')\nprint(json.dumps(z['HostedZone']['Id'].rsplit('/', 1)[-1]))",
        &[],
    );
    let access = format!(
        "access:\n  mode: load_balancer\n  domain: airflow.example.com\n  hosted_zone_id: {}\n  allowed_cidrs: [10.0.0.0/8]\n",
        zone.as_str().unwrap()
    );
    let file = dev_with_access(s.dir.path(), &access);
    let text_of = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text_of.replace("flower: { enabled: false }", "flower: { enabled: true }"),
    )
    .unwrap();

    let t = template(&file);
    let flower = &t["Resources"]["FlowerService"]["Properties"];
    assert_eq!(flower["EnableExecuteCommand"], true, "{flower}");
    let role = &t["Resources"]["FlowerTaskRole"]["Properties"];
    let actions: Vec<String> = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|st| st["Action"].as_array().cloned().unwrap_or_default())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        actions
            .iter()
            .all(|a| a.starts_with("ssmmessages:") || a.starts_with("logs:")),
        "Flower's role holds ECS Exec's permissions only: {actions:?}"
    );
    // The balancer forwards to the api-server alone.
    let targets: Vec<&Value> = of_type(&t, "AWS::ElasticLoadBalancingV2::TargetGroup")
        .into_iter()
        .map(|(_, r)| &r["Properties"]["Port"])
        .collect();
    assert_eq!(targets, [&serde_json::json!(8080)]);

    s.deploy(&file);
    let f = file.to_str().unwrap();
    let out = s.run(&["ui", f, "--flower", "--print-command"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no flower task is running in service"),
        "{}",
        text(&out)
    );
    let started = s.python(
        r#"
import time, urllib.request
ecs = boto3.client('ecs')
cluster, service = phys['Cluster'], phys['FlowerService'].rsplit('/', 1)[-1]
def call(method, path, body=None):
    req = urllib.request.Request(sys.argv[2] + path, method=method, data=json.dumps(body or {}).encode(), headers={'Content-Type': 'application/json'})
    return json.load(urllib.request.urlopen(req))
call('POST', '/_emulator/ecs-services', {'cluster': cluster, 'service': service})
for _ in range(100):
    tasks = call('GET', f'/_emulator/ecs-services/{cluster}/{service}')['tasks']
    if tasks:
        break
    time.sleep(0.1)
call('POST', f"/_emulator/ecs-tasks/{tasks[0]['taskId']}/running", {'ip': '10.40.0.11'})
t = ecs.describe_tasks(cluster=cluster, tasks=[tasks[0]['taskArn']])['tasks'][0]
c = next(c for c in t['containers'] if c['name'] == 'flower')
print(json.dumps({'cluster': cluster, 'task': t['taskArn'].rsplit('/', 1)[-1], 'runtime': c['runtimeId']}, default=str))
"#,
        &["stack", &s.emulator.endpoint],
    );
    let out = s.run(&["ui", f, "--flower", "--print-command"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            r#"aws ssm start-session --target ecs:{}_{}_{} --document-name AWS-StartPortForwardingSession --parameters '{{"portNumber":["5555"],"localPortNumber":["5555"]}}' --region us-east-1"#,
            started["cluster"].as_str().unwrap(),
            started["task"].as_str().unwrap(),
            started["runtime"].as_str().unwrap()
        )
    );
    // A stack without Flower: bad input naming the setting.
    let dev = root().join("stacks/dev.yaml");
    let out = s.run(&["ui", dev.to_str().unwrap(), "--flower", "--print-command"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("services.flower.enabled"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_stack_reached_in_the_vpc_deploys_with_its_allow_list() {
    let s = Session::new();
    let file = dev_with_access(
        s.dir.path(),
        "access:\n  mode: in_vpc\n  allowed_cidrs: [10.8.0.0/16]\n",
    );
    s.deploy(&file);
    let rules = s.python(
        r#"
ec2 = boto3.client('ec2')
g = ec2.describe_security_groups(GroupIds=[phys['ApiServerSecurityGroup']])['SecurityGroups'][0]
print(json.dumps(sorted([p['FromPort'], r['CidrIp']] for p in g['IpPermissions'] for r in p.get('IpRanges', []))))
"#,
        &["stack"],
    );
    assert_eq!(rules, serde_json::json!([[8080, "10.8.0.0/16"]]));
}

#[test]
fn an_internet_facing_balancer_with_the_users_certificate_deploys_in_the_public_subnets() {
    let s = Session::new();
    // The certificate exists before the stack, issued in the stack's region.
    let arn = s.python(
        "acm = boto3.client('acm')\narn = acm.request_certificate(DomainName='airflow.example.org', ValidationMethod='DNS')['CertificateArn']\nprint(json.dumps(arn))",
        &[],
    );
    let arn = arn.as_str().unwrap();
    let access = format!(
        "access:\n  mode: load_balancer\n  scheme: internet-facing\n  domain: airflow.example.org\n  certificate_arn: {arn}\n  allowed_cidrs: [203.0.113.0/24]\n"
    );
    let file = dev_with_access(s.dir.path(), &access);
    s.deploy(&file);
    let deployed = s.python(
        r#"
elb, ec2 = boto3.client('elbv2'), boto3.client('ec2')
lb = elb.describe_load_balancers()['LoadBalancers'][0]
https = [l for l in elb.describe_listeners(LoadBalancerArn=lb['LoadBalancerArn'])['Listeners'] if l['Protocol'] == 'HTTPS'][0]
g = ec2.describe_security_groups(GroupIds=[phys['LoadBalancerSecurityGroup']])['SecurityGroups'][0]
print(json.dumps({'scheme': lb['Scheme'], 'subnets': sorted(a['SubnetId'] for a in lb['AvailabilityZones']),
  'public': sorted([phys['PublicSubnet1'], phys['PublicSubnet2']]),
  'certificate': https['Certificates'][0]['CertificateArn'],
  'ingress': sorted([p['FromPort'], r['CidrIp']] for p in g['IpPermissions'] for r in p.get('IpRanges', []))}))
"#,
        &["stack"],
    );
    assert_eq!(deployed["scheme"], "internet-facing", "{deployed}");
    assert_eq!(deployed["subnets"], deployed["public"], "{deployed}");
    assert_eq!(deployed["certificate"], arn);
    assert_eq!(
        deployed["ingress"],
        serde_json::json!([[80, "203.0.113.0/24"], [443, "203.0.113.0/24"]])
    );
}

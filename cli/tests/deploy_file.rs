//! The example deployment file (`docs/deploy/compose.yaml`) parses, and every service's command
//! is a `sekai serve` that the shipped argument parser accepts, on FoundationDB, with valid roles;
//! together the services run at least one edge and one processor node.

use clap::Parser;
use sekai_cli::commands::ServeArgs;
use serde_yaml::Value;

/// `sekai serve`'s arguments, as the binary parses them.
#[derive(Parser, Debug)]
struct Serve {
    #[command(flatten)]
    args: ServeArgs,
}

fn compose() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy/compose.yaml");
    let text = std::fs::read_to_string(path).expect("the deployment file exists");
    let mut value: Value = serde_yaml::from_str(&text).expect("the deployment file is YAML");
    value.apply_merge().expect("its merge keys resolve");
    value
}

#[test]
fn the_deployment_file_parses_and_its_commands_are_valid() {
    let compose = compose();
    let services = compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("a services map");
    let (mut edges, mut processors) = (0, 0);
    for (name, service) in services {
        let command: Vec<String> = service
            .get("command")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{name:?} has a command list"))
            .iter()
            .map(|v| v.as_str().expect("string arguments").to_string())
            .collect();
        assert_eq!(
            command.get(..2),
            Some(&["sekai".into(), "serve".into()][..])
        );
        // The secret comes from SEKAI_EDGE_SECRET in the file's environment.
        let argv = command[1..]
            .iter()
            .cloned()
            .chain(["--secret".into(), "x".into()]);
        let parsed = Serve::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{name:?}: `sekai serve` refuses its arguments: {e}"))
            .args;
        assert!(parsed.fdb.is_some(), "{name:?} runs on the FDB cluster");
        let replicas = service
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .and_then(Value::as_u64)
            .unwrap_or(1);
        edges += u64::from(parsed.roles.edge) * replicas;
        processors += u64::from(parsed.roles.processor) * replicas;
        let environment = service.get("environment").and_then(Value::as_mapping);
        assert!(
            environment.is_some_and(|e| e.contains_key("SEKAI_EDGE_SECRET")),
            "{name:?} gets the token secret"
        );
    }
    assert!(
        edges >= 1 && processors >= 2,
        "{edges} edges, {processors} processors"
    );
}

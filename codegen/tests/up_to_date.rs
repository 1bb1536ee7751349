//! The checked-in generated code and the vendored schemas agree with the generator.

use std::collections::BTreeSet;

use cfn_codegen::{
    allow_list, codegen_dir, generate, out_of_date, output_dir, resources, schema_file,
};

#[test]
fn checked_in_l1_is_what_the_generator_writes() {
    let generated = generate(&codegen_dir()).expect("the generator runs");
    let problems = out_of_date(&generated, &output_dir());
    assert!(
        problems.is_empty(),
        "src/cfn/l1 is not what codegen/ generates: {}.\n\
         Run `cargo run -p cfn-codegen` and commit the result (never edit the generated \
         files by hand).",
        problems.join("; ")
    );
}

#[test]
fn generating_twice_gives_the_same_bytes() {
    let first = generate(&codegen_dir()).unwrap();
    let second = generate(&codegen_dir()).unwrap();
    assert_eq!(first, second);
}

#[test]
fn vendored_schemas_are_exactly_the_allow_list() {
    let listed: BTreeSet<String> = allow_list(&codegen_dir())
        .unwrap()
        .iter()
        .map(|e| schema_file(&e.type_name))
        .collect();
    let vendored: BTreeSet<String> = std::fs::read_dir(codegen_dir().join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        listed, vendored,
        "codegen/schemas does not match codegen/resource-types.txt: run codegen/refresh-schemas.sh"
    );
}

/// The replacement data `diff` relies on, checked on the real schemas.
#[test]
fn create_only_lists_of_the_stack_s_stateful_resources() {
    let all = resources(&codegen_dir()).unwrap();
    let get = |t: &str| all.iter().find(|r| r.type_name == t).unwrap();

    let cluster = get("AWS::RDS::DBCluster");
    for p in [
        "DBClusterIdentifier",
        "DatabaseName",
        "StorageEncrypted",
        "DBSubnetGroupName",
    ] {
        assert!(
            cluster.create_only.contains(&format!("/properties/{p}")),
            "{p}"
        );
    }
    assert!(cluster
        .conditional_create_only
        .contains(&"/properties/Engine".to_string()));

    let bucket = get("AWS::S3::Bucket");
    assert!(bucket
        .create_only
        .contains(&"/properties/BucketName".to_string()));

    // A task definition revision is immutable: every writable property but the tags is
    // create-only, so any other change replaces it.
    let task = get("AWS::ECS::TaskDefinition");
    let in_place: Vec<&str> = task
        .fields
        .iter()
        .filter(|f| {
            !task
                .create_only
                .contains(&format!("/properties/{}", f.cfn_name))
        })
        .map(|f| f.cfn_name.as_str())
        .collect();
    assert_eq!(in_place, ["Tags"]);
}

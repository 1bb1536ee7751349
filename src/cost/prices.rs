//! The one price table: on-demand list prices in USD per region, dated, with the public
//! page each number comes from. Change prices here and nowhere else.
//!
//! How the numbers were gathered (see docs/cost.md): the us-east-1 Fargate, RDS
//! db.t4g, Aurora Serverless v2 and MWAA mw1.small figures were cross-checked against
//! stored copies of public pages on the date below; the rest are the official pages'
//! figures as last read by the authors and carry `checked: false` until someone
//! re-reads them. The estimate prints the date, so a stale table is visible.

/// When the table was last reviewed.
pub const PRICES_AS_OF: &str = "2026-11-22";

/// Hours in the month the estimate uses (AWS's own convention: 365 * 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Where a number comes from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The public page.
    pub url: &'static str,
    /// Whether the figure was cross-checked on [`PRICES_AS_OF`].
    pub checked: bool,
}

/// The official pricing pages.
pub mod pages {
    use super::Source;
    /// AWS Fargate pricing.
    pub const FARGATE: Source = Source {
        url: "https://aws.amazon.com/fargate/pricing/",
        checked: true,
    };
    /// Fargate Spot: the live price moves; this is a discount factor, see [`super::Prices::fargate_spot_factor`].
    pub const FARGATE_SPOT: Source = Source {
        url: "https://aws.amazon.com/fargate/pricing/ (Spot table); observed eu-west-1 x86 Spot $0.01334053/vCPU-h, https://tomgregory.com/aws/aws-fargate-spot-vs-fargate-price-comparison/",
        checked: true,
    };
    /// Amazon ECR pricing (private repository storage).
    pub const ECR: Source = Source {
        url: "https://aws.amazon.com/ecr/pricing/",
        checked: false,
    };
    /// AWS CodeBuild pricing (on-demand, per build minute).
    pub const CODEBUILD: Source = Source {
        url: "https://aws.amazon.com/codebuild/pricing/",
        checked: false,
    };
    /// Amazon RDS for PostgreSQL pricing.
    pub const RDS: Source = Source {
        url: "https://aws.amazon.com/rds/postgresql/pricing/",
        checked: true,
    };
    /// Amazon Aurora pricing (Serverless v2 ACU-hours, storage).
    pub const AURORA: Source = Source {
        url: "https://aws.amazon.com/rds/aurora/pricing/",
        checked: true,
    };
    /// Amazon ElastiCache pricing (on-demand nodes).
    pub const ELASTICACHE: Source = Source {
        url: "https://aws.amazon.com/elasticache/pricing/",
        checked: false,
    };
    /// Amazon VPC pricing (NAT gateways, public IPv4 addresses).
    pub const VPC: Source = Source {
        url: "https://aws.amazon.com/vpc/pricing/",
        checked: false,
    };
    /// Elastic Load Balancing pricing.
    pub const ELB: Source = Source {
        url: "https://aws.amazon.com/elasticloadbalancing/pricing/",
        checked: false,
    };
    /// AWS Secrets Manager pricing.
    pub const SECRETS_MANAGER: Source = Source {
        url: "https://aws.amazon.com/secrets-manager/pricing/",
        checked: false,
    };
    /// Amazon CloudWatch pricing (Logs ingestion).
    pub const CLOUDWATCH: Source = Source {
        url: "https://aws.amazon.com/cloudwatch/pricing/",
        checked: false,
    };
    /// Amazon S3 pricing (Standard storage).
    pub const S3: Source = Source {
        url: "https://aws.amazon.com/s3/pricing/",
        checked: false,
    };
    /// AWS KMS pricing (customer-managed keys).
    pub const KMS: Source = Source {
        url: "https://aws.amazon.com/kms/pricing/",
        checked: false,
    };
    /// AWS Lambda pricing (duration per GB-second, by architecture).
    pub const LAMBDA: Source = Source {
        url: "https://aws.amazon.com/lambda/pricing/",
        checked: false,
    };
    /// Amazon MWAA pricing (environment classes).
    pub const MWAA: Source = Source {
        url: "https://aws.amazon.com/managed-workflows-for-apache-airflow/pricing/",
        checked: false,
    };
}

/// Fargate per-hour prices of one architecture.
#[derive(Debug, Clone, Copy)]
pub struct FargateRate {
    /// USD per vCPU-hour.
    pub vcpu_hour: f64,
    /// USD per GB-hour of memory.
    pub gb_hour: f64,
}

/// Every price the estimator uses, for one region.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    /// Region name, e.g. `us-east-1`.
    pub region: &'static str,
    /// Fargate Linux/x86_64, on demand.
    pub fargate_x86: FargateRate,
    /// Fargate Linux/ARM64 (Graviton), on demand.
    pub fargate_arm: FargateRate,
    /// Fargate Spot as a fraction of the on-demand price. AWS publishes Spot prices that
    /// move ("up to 70 % off"); 0.33 is the observed level, and the estimate says so.
    pub fargate_spot_factor: f64,
    /// RDS for PostgreSQL Single-AZ instance classes: `(class, USD per hour)`.
    pub rds_instances: &'static [(&'static str, f64)],
    /// RDS gp2/gp3 storage, USD per GB-month.
    pub rds_storage_gb_month: f64,
    /// Aurora Serverless v2, USD per ACU-hour (Aurora Standard).
    pub aurora_acu_hour: f64,
    /// Aurora Standard storage, USD per GB-month.
    pub aurora_storage_gb_month: f64,
    /// ElastiCache on-demand nodes: `(node type, USD per hour)`.
    pub elasticache_nodes: &'static [(&'static str, f64)],
    /// NAT gateway, USD per hour.
    pub nat_hour: f64,
    /// NAT gateway data processing, USD per GB.
    pub nat_gb: f64,
    /// A public IPv4 address (in use or idle), USD per hour.
    pub public_ipv4_hour: f64,
    /// Application Load Balancer, USD per hour.
    pub alb_hour: f64,
    /// Application Load Balancer, USD per LCU-hour.
    pub alb_lcu_hour: f64,
    /// A Secrets Manager secret, USD per month.
    pub secret_month: f64,
    /// A customer-managed KMS key in its first year, USD per month. With automatic
    /// rotation each new yearly backing key adds as much again ("Key Storage" on the
    /// pricing page); requests are left out (20,000 a month are free).
    pub kms_key_month: f64,
    /// CloudWatch Logs ingestion (standard), USD per GB.
    pub logs_ingest_gb: f64,
    /// S3 Standard, USD per GB-month (first 50 TB).
    pub s3_gb_month: f64,
    /// ECR private repository storage, USD per GB-month.
    pub ecr_gb_month: f64,
    /// CodeBuild on demand, `BUILD_GENERAL1_SMALL` Linux (x86_64), USD per build minute.
    pub codebuild_small_x86_minute: f64,
    /// CodeBuild on demand, `BUILD_GENERAL1_SMALL` ARM (arm1.small), USD per build minute.
    pub codebuild_small_arm_minute: f64,
    /// Lambda duration on arm64, USD per GB-second (first tier).
    pub lambda_arm_gb_second: f64,
    /// Lambda duration on x86_64, USD per GB-second (first tier).
    pub lambda_x86_gb_second: f64,
    /// MWAA environment classes: `(class, USD per hour)`.
    pub mwaa: &'static [(&'static str, f64)],
}

/// The regions the table knows, in the order they are listed to the user.
pub const REGIONS: &[Prices] = &[US_EAST_1, EU_WEST_1];

const US_EAST_1: Prices = Prices {
    region: "us-east-1",
    fargate_x86: FargateRate {
        vcpu_hour: 0.04048,
        gb_hour: 0.004445,
    },
    fargate_arm: FargateRate {
        vcpu_hour: 0.03238,
        gb_hour: 0.00356,
    },
    fargate_spot_factor: 0.33,
    rds_instances: &[
        ("db.t4g.micro", 0.016),
        ("db.t4g.small", 0.032),
        ("db.t4g.medium", 0.065),
        ("db.t4g.large", 0.129),
        ("db.t3.micro", 0.018),
        ("db.t3.small", 0.036),
        ("db.t3.medium", 0.072),
        ("db.m6g.large", 0.168),
        ("db.m7g.large", 0.168),
    ],
    rds_storage_gb_month: 0.115,
    aurora_acu_hour: 0.12,
    aurora_storage_gb_month: 0.10,
    elasticache_nodes: &[
        ("cache.t4g.micro", 0.016),
        ("cache.t4g.small", 0.032),
        ("cache.t4g.medium", 0.065),
        ("cache.t3.micro", 0.017),
        ("cache.t3.small", 0.034),
        ("cache.m7g.large", 0.158),
    ],
    nat_hour: 0.045,
    nat_gb: 0.045,
    public_ipv4_hour: 0.005,
    alb_hour: 0.0225,
    alb_lcu_hour: 0.008,
    secret_month: 0.40,
    kms_key_month: 1.00,
    logs_ingest_gb: 0.50,
    s3_gb_month: 0.023,
    ecr_gb_month: 0.10,
    codebuild_small_x86_minute: 0.005,
    codebuild_small_arm_minute: 0.0034,
    lambda_arm_gb_second: 0.0000133334,
    lambda_x86_gb_second: 0.0000166667,
    mwaa: &[
        ("mw1.micro", 0.24),
        ("mw1.small", 0.49),
        ("mw1.medium", 0.74),
        ("mw1.large", 0.99),
    ],
};

const EU_WEST_1: Prices = Prices {
    region: "eu-west-1",
    fargate_x86: FargateRate {
        vcpu_hour: 0.04048,
        gb_hour: 0.004445,
    },
    fargate_arm: FargateRate {
        vcpu_hour: 0.03238,
        gb_hour: 0.00356,
    },
    fargate_spot_factor: 0.33,
    rds_instances: &[
        ("db.t4g.micro", 0.018),
        ("db.t4g.small", 0.036),
        ("db.t4g.medium", 0.072),
        ("db.t4g.large", 0.144),
        ("db.t3.micro", 0.019),
        ("db.t3.small", 0.038),
        ("db.t3.medium", 0.076),
        ("db.m6g.large", 0.183),
        ("db.m7g.large", 0.183),
    ],
    rds_storage_gb_month: 0.127,
    aurora_acu_hour: 0.13,
    aurora_storage_gb_month: 0.11,
    elasticache_nodes: &[
        ("cache.t4g.micro", 0.0176),
        ("cache.t4g.small", 0.0352),
        ("cache.t4g.medium", 0.072),
        ("cache.t3.micro", 0.018),
        ("cache.t3.small", 0.036),
        ("cache.m7g.large", 0.174),
    ],
    nat_hour: 0.048,
    nat_gb: 0.048,
    public_ipv4_hour: 0.005,
    alb_hour: 0.0252,
    alb_lcu_hour: 0.008,
    secret_month: 0.40,
    kms_key_month: 1.00,
    logs_ingest_gb: 0.57,
    s3_gb_month: 0.023,
    ecr_gb_month: 0.10,
    codebuild_small_x86_minute: 0.005,
    codebuild_small_arm_minute: 0.0034,
    lambda_arm_gb_second: 0.0000133334,
    lambda_x86_gb_second: 0.0000166667,
    mwaa: &[
        ("mw1.micro", 0.26),
        ("mw1.small", 0.55),
        ("mw1.medium", 0.83),
        ("mw1.large", 1.11),
    ],
};

/// The prices of a region, or `None` when the table does not know it.
pub fn for_region(region: &str) -> Option<&'static Prices> {
    REGIONS.iter().find(|p| p.region == region)
}

/// The regions the table knows, for error messages.
pub fn known_regions() -> Vec<&'static str> {
    REGIONS.iter().map(|p| p.region).collect()
}

/// Looks up `(name, price)` in a small list.
pub fn lookup(list: &[(&'static str, f64)], name: &str) -> Option<f64> {
    list.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

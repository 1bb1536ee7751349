//! The VPC: an existing one from the stack file, or a new one over two AZs - public
//! subnets only (tasks get public IPs, nothing is allowed in) or private subnets
//! behind NAT gateways.

use super::scope::{Scope, Tags};
use crate::cfn::l1::ec2::{
    Eip, InternetGateway, NatGateway, Route, RouteTable, Subnet, SubnetRouteTableAssociation, Vpc,
    VpcGatewayAttachment,
};
use crate::cfn::{Attributes, Expr, ListExpr, LogicalId, Template};
use crate::spec::{Spec, VpcCidr};

/// What the other constructs need from the network.
pub struct Network {
    /// The VPC id.
    pub vpc_id: Expr,
    /// Subnets for tasks, the database and the broker (two AZs).
    pub subnets: Vec<Expr>,
    /// Subnets with a route to the internet gateway, for an internet-facing load
    /// balancer: a created VPC's public subnets; an existing VPC's `subnet_ids`.
    pub public_subnets: Vec<Expr>,
    /// Whether tasks get a public IP: they sit in public subnets without NAT and need
    /// one to pull images and reach AWS APIs.
    pub assign_public_ip: bool,
    /// The routes (and their subnet associations) that take the task subnets to the
    /// internet. A task started before they exist cannot pull its image or reach
    /// Secrets Manager, so every task-starting resource depends on them. Empty for an
    /// existing VPC, whose routes are not this stack's.
    pub egress_ready: Vec<LogicalId>,
}

const AZS: u32 = 2;

/// The destination of a default route.
const ANYWHERE: &str = "0.0.0.0/0";

/// Adds the VPC (or takes the stack file's) and returns what the tasks need of it.
pub fn add(s: &mut Scope) -> Network {
    let (t, spec, tags) = (&mut s.t, s.spec, &s.tags);
    match &spec.network.vpc_id {
        Some(vpc) => Network {
            vpc_id: Expr::lit(vpc.clone()),
            subnets: subnet_ids(spec),
            public_subnets: subnet_ids(spec),
            assign_public_ip: spec.network.assign_public_ip,
            egress_ready: Vec::new(),
        },
        None => create_vpc(t, spec, tags),
    }
}

fn subnet_ids(spec: &Spec) -> Vec<Expr> {
    spec.network
        .subnet_ids
        .iter()
        .map(|s| Expr::lit(s.clone()))
        .collect()
}

fn create_vpc(t: &mut Template, spec: &Spec, tags: &Tags) -> Network {
    let name = &spec.name;
    let cidr = Expr::lit(spec.network.cidr.to_string());
    let vpc = t.add(
        "Vpc",
        Vpc {
            cidr_block: Some(cidr.clone()),
            enable_dns_hostnames: Some(true),
            enable_dns_support: Some(true),
            tags: tags.named(name),
            ..Vpc::default()
        },
    );
    let igw = t.add(
        "InternetGateway",
        InternetGateway {
            tags: tags.named(name),
        },
    );
    let attach = t.add(
        "InternetGatewayAttachment",
        VpcGatewayAttachment {
            vpc_id: Some(vpc.r#ref()),
            internet_gateway_id: Some(igw.r#ref()),
            ..VpcGatewayAttachment::default()
        },
    );
    let public_rt = t.add(
        "PublicRouteTable",
        RouteTable {
            vpc_id: Some(vpc.r#ref()),
            tags: tags.named(&format!("{name}-public")),
        },
    );
    let public_route = t.add_with(
        "PublicDefaultRoute",
        Route {
            route_table_id: Some(public_rt.r#ref()),
            destination_cidr_block: Some(ANYWHERE.into()),
            gateway_id: Some(igw.r#ref()),
            ..Route::default()
        },
        Attributes::depends_on([attach.id().clone()]),
    );
    let mut public_ready = vec![public_route.id().clone()];
    // Four equal blocks: two public, two private (used only with NAT).
    let block = |i: u32| {
        Expr::select(
            i,
            ListExpr::Cidr(vpc.cidr_block(), 4, host_bits(&spec.network.cidr)),
        )
    };
    let nat = spec.network.nat_gateways;
    let mut public = Vec::new();
    for i in 0..AZS {
        let az = Expr::select(i, ListExpr::GetAzs);
        let id = format!("PublicSubnet{}", i + 1);
        let subnet = t.add(
            &id,
            Subnet {
                vpc_id: Some(vpc.r#ref()),
                cidr_block: Some(block(i)),
                availability_zone: Some(az),
                map_public_ip_on_launch: Some(nat == 0),
                tags: tags.named(&format!("{name}-public-{}", i + 1)),
                ..Subnet::default()
            },
        );
        let association = t.add(
            &format!("{id}RouteTableAssociation"),
            SubnetRouteTableAssociation {
                subnet_id: Some(subnet.r#ref()),
                route_table_id: Some(public_rt.r#ref()),
            },
        );
        public_ready.push(association.id().clone());
        public.push(subnet);
    }
    if nat == 0 {
        return Network {
            vpc_id: vpc.r#ref(),
            subnets: public.iter().map(|s| s.r#ref()).collect(),
            public_subnets: public.iter().map(|s| s.r#ref()).collect(),
            assign_public_ip: true,
            egress_ready: public_ready,
        };
    }
    let nats: Vec<_> = (0..nat.min(AZS as u8) as usize)
        .map(|i| {
            let label = format!("{name}-nat-{}", i + 1);
            let eip = t.add(
                &format!("NatEip{}", i + 1),
                Eip {
                    domain: Some("vpc".into()),
                    tags: tags.named(&label),
                    ..Eip::default()
                },
            );
            t.add_with(
                &format!("NatGateway{}", i + 1),
                NatGateway {
                    allocation_id: Some(eip.allocation_id()),
                    subnet_id: Some(public[i].r#ref()),
                    tags: tags.named(&label),
                    ..NatGateway::default()
                },
                Attributes::depends_on([attach.id().clone()]),
            )
        })
        .collect();
    let mut private = Vec::new();
    // Private subnets reach the internet through NAT gateways, which reach it through
    // the public subnets' route: both hops must exist.
    let mut private_ready = public_ready.clone();
    for i in 0..AZS {
        // With one NAT gateway both private subnets route through it (cheaper, one AZ
        // of egress); with two, each AZ has its own.
        let nat_gateway = &nats[(i as usize).min(nats.len() - 1)];
        let id = format!("PrivateSubnet{}", i + 1);
        let label = format!("{name}-private-{}", i + 1);
        let subnet = t.add(
            &id,
            Subnet {
                vpc_id: Some(vpc.r#ref()),
                cidr_block: Some(block(AZS + i)),
                availability_zone: Some(Expr::select(i, ListExpr::GetAzs)),
                map_public_ip_on_launch: Some(false),
                tags: tags.named(&label),
                ..Subnet::default()
            },
        );
        let rt = t.add(
            &format!("PrivateRouteTable{}", i + 1),
            RouteTable {
                vpc_id: Some(vpc.r#ref()),
                tags: tags.named(&label),
            },
        );
        let route = t.add(
            &format!("PrivateDefaultRoute{}", i + 1),
            Route {
                route_table_id: Some(rt.r#ref()),
                destination_cidr_block: Some(ANYWHERE.into()),
                nat_gateway_id: Some(nat_gateway.r#ref()),
                ..Route::default()
            },
        );
        let association = t.add(
            &format!("{id}RouteTableAssociation"),
            SubnetRouteTableAssociation {
                subnet_id: Some(subnet.r#ref()),
                route_table_id: Some(rt.r#ref()),
            },
        );
        private_ready.extend([route.id().clone(), association.id().clone()]);
        private.push(subnet);
    }
    Network {
        vpc_id: vpc.r#ref(),
        subnets: private.iter().map(|s| s.r#ref()).collect(),
        public_subnets: public.iter().map(|s| s.r#ref()).collect(),
        assign_public_ip: false,
        egress_ready: private_ready,
    }
}

/// Host bits of each of four equal subnets carved from the VPC block.
fn host_bits(cidr: &VpcCidr) -> u32 {
    32 - (u32::from(cidr.prefix()) + 2)
}

#[cfg(test)]
mod tests {
    #[test]
    fn four_subnets_fit_the_block() {
        assert_eq!(super::host_bits(&"10.0.0.0/16".parse().unwrap()), 14);
        assert_eq!(super::host_bits(&"10.0.0.0/24".parse().unwrap()), 6);
    }
}

//! EC2 networking: VPC, subnets, gateways, routes, security groups.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::EC2::VPC`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vpc {
    pub cidr_block: Expr,
    pub enable_dns_hostnames: bool,
    pub enable_dns_support: bool,
    pub tags: Vec<Tag>,
}
resource!(Vpc, "AWS::EC2::VPC");

impl Handle<Vpc> {
    /// `Fn::GetAtt CidrBlock`
    pub fn cidr_block(&self) -> Expr {
        self.get_att("CidrBlock")
    }
}

/// `AWS::EC2::Subnet`
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subnet {
    pub vpc_id: Expr,
    pub cidr_block: Expr,
    pub availability_zone: Expr,
    pub map_public_ip_on_launch: bool,
    pub tags: Vec<Tag>,
}
resource!(Subnet, "AWS::EC2::Subnet");

/// `AWS::EC2::InternetGateway`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InternetGateway {
    pub tags: Vec<Tag>,
}
resource!(InternetGateway, "AWS::EC2::InternetGateway");

/// `AWS::EC2::VPCGatewayAttachment`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcGatewayAttachment {
    pub vpc_id: Expr,
    pub internet_gateway_id: Expr,
}
resource!(VpcGatewayAttachment, "AWS::EC2::VPCGatewayAttachment");

/// `AWS::EC2::RouteTable`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RouteTable {
    pub vpc_id: Expr,
    pub tags: Vec<Tag>,
}
resource!(RouteTable, "AWS::EC2::RouteTable");

/// `AWS::EC2::Route`: a default route through an internet or NAT gateway.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    pub route_table_id: Expr,
    pub destination_cidr_block: String,
    pub gateway_id: Option<Expr>,
    pub nat_gateway_id: Option<Expr>,
}
resource!(Route, "AWS::EC2::Route");

/// `AWS::EC2::SubnetRouteTableAssociation`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubnetRouteTableAssociation {
    pub subnet_id: Expr,
    pub route_table_id: Expr,
}
resource!(
    SubnetRouteTableAssociation,
    "AWS::EC2::SubnetRouteTableAssociation"
);

/// `AWS::EC2::EIP` for a NAT gateway.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Eip {
    pub domain: &'static str,
    pub tags: Vec<Tag>,
}
resource!(Eip, "AWS::EC2::EIP");

impl Handle<Eip> {
    /// `Fn::GetAtt AllocationId`
    pub fn allocation_id(&self) -> Expr {
        self.get_att("AllocationId")
    }
}

/// `AWS::EC2::NatGateway`
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NatGateway {
    pub allocation_id: Expr,
    pub subnet_id: Expr,
    pub tags: Vec<Tag>,
}
resource!(NatGateway, "AWS::EC2::NatGateway");

/// `AWS::EC2::SecurityGroup` with no inline rules: ingress is added rule by rule with
/// [`SecurityGroupIngress`], so each peer's port is one visible resource.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    pub group_description: String,
    pub vpc_id: Expr,
    pub security_group_egress: Vec<EgressRule>,
    pub tags: Vec<Tag>,
}
resource!(SecurityGroup, "AWS::EC2::SecurityGroup");

/// An egress rule inline in a security group.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EgressRule {
    pub ip_protocol: &'static str,
    pub cidr_ip: &'static str,
    pub description: &'static str,
}

impl EgressRule {
    /// All outbound traffic: tasks pull images and reach AWS APIs.
    pub fn all() -> EgressRule {
        EgressRule {
            ip_protocol: "-1",
            cidr_ip: "0.0.0.0/0",
            description: "All outbound traffic",
        }
    }
}

impl Handle<SecurityGroup> {
    /// `Fn::GetAtt GroupId`
    pub fn group_id(&self) -> Expr {
        self.get_att("GroupId")
    }
}

/// `AWS::EC2::SecurityGroupIngress`: one TCP port from a peer group or a CIDR.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupIngress {
    pub group_id: Expr,
    pub ip_protocol: &'static str,
    pub from_port: u16,
    pub to_port: u16,
    pub source_security_group_id: Option<Expr>,
    pub cidr_ip: Option<String>,
    pub description: String,
}
resource!(SecurityGroupIngress, "AWS::EC2::SecurityGroupIngress");

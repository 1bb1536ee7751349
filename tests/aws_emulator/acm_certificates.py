"""AWS::CertificateManager::Certificate with DNS validation, which moto's CloudFormation
does not create (the stub left no certificate, and an HTTPS listener naming it failed
with CertificateNotFoundException, as on AWS).

What CloudFormation does ("AWS::CertificateManager::Certificate", DomainValidationOption:
"When you specify HostedZoneId, CloudFormation creates the validation records for you"):
it requests the certificate, writes one CNAME validation record per domain into the
hosted zone named for it, and the resource completes once ACM has issued the
certificate. A zone that does not exist, or that the domain is not in, never validates:
on AWS the resource waits until it times out; here it fails at once with that reason.

`create` returns the certificate's ARN (its Ref) or raises ValueError with the reason.
"""

from __future__ import annotations

import hashlib


def _in_zone(domain: str, zone_name: str) -> bool:
    domain, zone = domain.rstrip(".").lower(), zone_name.rstrip(".").lower()
    return domain == zone or domain.endswith("." + zone)


def _validation_record(domain: str, zone_id: str) -> dict:
    digest = hashlib.sha256(f"{zone_id}/{domain}".encode()).hexdigest()
    return {"Name": f"_{digest[:32]}.{domain.rstrip('.')}.", "Type": "CNAME", "TTL": "300",
            "ResourceRecords": [{"Value": f"_{digest[32:64]}.acm-validations.aws."}]}


def create(props: dict, account_id: str, region: str) -> str:
    from moto.acm.models import acm_backends
    from moto.route53.models import route53_backends

    domain = props.get("DomainName")
    if not domain:
        raise ValueError("Properties validation failed: required key [DomainName] not found")
    if (props.get("ValidationMethod") or "EMAIL") != "DNS":
        raise ValueError("the emulator models DNS validation only (ValidationMethod DNS)")
    options = props.get("DomainValidationOptions") or []
    zones = route53_backends[account_id]["global"]
    for name in [domain, *(props.get("SubjectAlternativeNames") or [])]:
        option = next((o for o in options if o.get("DomainName") == name), None)
        if not option or not option.get("HostedZoneId"):
            raise ValueError(f"{name}: no DomainValidationOptions entry with a HostedZoneId; "
                             "the certificate would wait for a validation record nobody writes")
        zone_id = option["HostedZoneId"]
        try:
            zone = zones.get_hosted_zone(zone_id)
        except Exception:  # noqa: BLE001 - moto's NoSuchHostedZone
            raise ValueError(f"hosted zone {zone_id} does not exist: the certificate for "
                             f"{name} cannot be validated") from None
        if not _in_zone(name, zone.name):
            raise ValueError(f"{name} is not in hosted zone {zone_id} ({zone.name}): the "
                             "validation record would not be authoritative")
        zones.change_resource_record_sets(zone_id, [{
            "Action": "UPSERT", "ResourceRecordSet": _validation_record(name, zone_id)}])
    acm = acm_backends[account_id][region]
    arn = acm.request_certificate(domain, None, props.get("SubjectAlternativeNames") or [],
                                  [])
    acm.get_certificate(arn).status = "ISSUED"
    return arn


def delete(arn: str, account_id: str, region: str) -> None:
    from moto.acm.models import acm_backends
    try:
        acm_backends[account_id][region].delete_certificate(arn)
    except Exception:  # noqa: BLE001 - already gone
        pass

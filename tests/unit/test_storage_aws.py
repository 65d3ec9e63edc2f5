"""The shared AWS clients and DynamoDB tables of ``nbaml.storage.aws``: built once per identity, never shared across."""

from __future__ import annotations

import dataclasses

import boto3

from nbaml.storage import aws as shared
from nbaml.storage.dynamo import table


def _make_table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_given_one_identity_then_a_table_is_built_once_and_writes_through_the_shared_client(aws) -> None:
    _make_table("games")
    first = table("games")
    assert table("games") is first  # not a new class from the resource model per call
    assert table("other") is not first and table("other").name == "other"
    assert first.meta.client is shared.resource("dynamodb").meta.client
    first.put_item(Item={"k": "g1", "v": 1})
    assert boto3.client("dynamodb").get_item(TableName="games", Key={"k": {"S": "g1"}})["Item"]["v"] == {"N": "1"}


def test_given_another_identity_pinned_then_its_table_signs_as_that_identity(aws) -> None:
    mine = table("games")
    other = dataclasses.replace(shared.current_identity(), access_key_id="AKIDOTHER", secret_access_key="other")
    with shared.pinned(other):
        theirs = table("games")
        assert table("games") is theirs
    assert theirs is not mine
    assert theirs.meta.client._request_signer._credentials.access_key == "AKIDOTHER"
    assert mine.meta.client._request_signer._credentials.access_key != "AKIDOTHER"


def test_given_reset_clients_then_tables_are_built_again(aws) -> None:
    before = table("games")
    shared.reset_clients()
    assert table("games") is not before

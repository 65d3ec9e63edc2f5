"""make size: each built function's unzipped size with every layer it deploys with, Globals' included."""

from __future__ import annotations

from pathlib import Path

from infra import size

BUILT = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Layers:
      - !Ref SharedLayer
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: SharedLayer}
  HeavyLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: HeavyLayer}
  LeanFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: LeanFunction, Handler: app.handler}
  HeavyFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: HeavyFunction, Handler: app.handler, Layers: [!Ref HeavyLayer]}
"""


def test_given_a_build_with_global_and_own_layers_then_each_function_counts_both(tmp_path: Path) -> None:
    # Given: what `sam build` leaves, with files of known sizes
    (tmp_path / "template.yaml").write_text(BUILT)
    for name, mb in {"SharedLayer": 1, "HeavyLayer": 3, "LeanFunction": 2, "HeavyFunction": 2}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "blob").write_bytes(b"x" * (mb * size.MB))
    # When
    sizes = size.function_sizes(tmp_path)
    # Then: the Globals layer is in both, the function's own layer is added to it, not put in its place
    assert sizes["LeanFunction"] == {"LeanFunction": 2.0, "SharedLayer": 1.0, "total": 3.0}
    assert sizes["HeavyFunction"] == {"HeavyFunction": 2.0, "SharedLayer": 1.0, "HeavyLayer": 3.0, "total": 6.0}
    # ... and over the limit, the command fails
    assert size.main([str(tmp_path), "--limit-mb", "5"]) == 1
    assert size.main([str(tmp_path)]) == 0

//! The generated ONNX protobuf bindings (`mafat::model::onnx_pb`) round-trip a small model built by
//! hand: a graph with one `Relu` node and one float initializer stored as `raw_data`.

use mafat::model::onnx_pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, tensor_proto::DataType,
};
use prost::Message;

fn relu_model(raw: &[u8]) -> ModelProto {
    let node = NodeProto {
        input: vec!["x".into()],
        output: vec!["y".into()],
        name: Some("relu0".into()),
        op_type: Some("Relu".into()),
        ..Default::default()
    };
    let weight = TensorProto {
        name: Some("w".into()),
        dims: vec![2, 3],
        data_type: Some(DataType::Float as i32),
        raw_data: Some(raw.to_vec()),
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(10),
        producer_name: Some("mafat-test".into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(21),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: vec![node],
            initializer: vec![weight],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn relu_model_round_trips() {
    let values = [1.0f32, -2.0, 0.5, 3.25, -0.0, 7.0];
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let model = relu_model(&raw);

    let bytes = model.encode_to_vec();
    assert!(!bytes.is_empty());
    let decoded = ModelProto::decode(bytes.as_slice()).expect("decode the encoded model");
    assert_eq!(decoded, model);

    assert_eq!(decoded.ir_version, Some(10));
    assert_eq!(decoded.opset_import[0].version, Some(21));
    let graph = decoded.graph.as_ref().expect("graph");
    assert_eq!(graph.node.len(), 1);
    assert_eq!(graph.node[0].op_type(), "Relu");
    assert_eq!(graph.node[0].input, ["x"]);
    assert_eq!(graph.node[0].output, ["y"]);

    let init = &graph.initializer[0];
    assert_eq!(init.name(), "w");
    assert_eq!(init.dims, [2, 3]);
    assert_eq!(init.data_type(), DataType::Float as i32);
    assert_eq!(init.raw_data(), raw.as_slice());
    let floats: Vec<f32> = init
        .raw_data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats.len(), values.len());
    for (a, b) in floats.iter().zip(&values) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}

#[test]
fn truncated_model_is_an_error() {
    let model = relu_model(&[0u8; 24]);
    let bytes = model.encode_to_vec();
    assert!(ModelProto::decode(&bytes[..bytes.len() - 1]).is_err());
}

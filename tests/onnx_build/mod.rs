//! Building ONNX models in tests with prost's types: a graph of nodes with small-integer weights.
#![allow(dead_code)]

use mafat::model::onnx_pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};

/// A graph under construction.
#[derive(Default)]
pub struct G {
    pub nodes: Vec<NodeProto>,
    pub inits: Vec<TensorProto>,
    pub seed: u64,
    pub count: usize,
}

pub fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

impl G {
    pub fn fresh(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{what}_{}", self.count)
    }

    /// Small integers in −2..=2 (deterministic).
    pub fn ints(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.seed = self
                    .seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.seed >> 33) % 5) as f32 - 2.0
            })
            .collect()
    }

    pub fn init_f(&mut self, dims: &[i64], data: Vec<f32>) -> String {
        let name = self.fresh("w");
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name
    }

    pub fn init_i(&mut self, dims: &[i64], data: &[i64]) -> String {
        let name = self.fresh("i");
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(DataType::Int64 as i32),
            int64_data: data.to_vec(),
            ..Default::default()
        });
        name
    }

    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh(op);
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(out.clone()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// A k×k convolution of `c` to `m` channels with integer weights and biases.
    pub fn conv(&mut self, x: &str, c: usize, m: usize, k: usize, stride: i64, pad: i64) -> String {
        let w = self.ints(m * c * k * k);
        let w = self.init_f(&[m as i64, c as i64, k as i64, k as i64], w);
        let b = self.ints(m);
        let b = self.init_f(&[m as i64], b);
        self.op(
            "Conv",
            &[x, &w, &b],
            vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("strides", &[stride, stride]),
                attr_ints("pads", &[pad; 4]),
            ],
        )
    }

    pub fn silu(&mut self, x: &str) -> String {
        let s = self.op("Sigmoid", &[x], vec![]);
        self.op("Mul", &[x, &s], vec![])
    }

    pub fn model(self, input: &[i64], outputs: &[&str]) -> ModelProto {
        let info = |name: &str, dims: &[i64]| ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(DataType::Float as i32),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| tensor_shape_proto::Dimension {
                                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(13),
            }],
            graph: Some(GraphProto {
                name: Some("built".into()),
                node: self.nodes,
                initializer: self.inits,
                input: vec![info("x", input)],
                output: outputs.iter().map(|o| info(o, &[])).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

//! The protobuf wire format of a [`super::RouteTable`]. (Placeholder: being written.)

#[derive(Clone, PartialEq, prost::Message)]
pub struct RouteTable {
    #[prost(string, tag = "1")]
    pub version: String,
}

impl From<&super::RouteTable> for RouteTable {
    fn from(t: &super::RouteTable) -> Self {
        RouteTable {
            version: t.version.clone(),
        }
    }
}

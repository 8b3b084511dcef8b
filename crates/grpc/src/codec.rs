//! The protobuf codec of every generated service and client: prost's, but a
//! message that does not decode is INVALID_ARGUMENT, as Layotto and Dapr
//! answer (prost's codec says INTERNAL), for unary and streaming calls alike.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Named in build.rs as the generated code's codec.
#[derive(Debug, Clone, Copy)]
pub struct LayottoCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for LayottoCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for LayottoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = UndecodableIsInvalidArgument<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        UndecodableIsInvalidArgument(ProstDecoder::new(BufferSettings::default()))
    }
}

/// prost's decoder, answering INVALID_ARGUMENT for bytes that are not the message.
#[derive(Debug)]
pub struct UndecodableIsInvalidArgument<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for UndecodableIsInvalidArgument<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| Status::invalid_argument(status.message().to_owned()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

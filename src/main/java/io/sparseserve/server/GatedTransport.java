package io.sparseserve.server;

import io.netty.channel.Channel;
import io.netty.channel.ChannelFactory;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.ServerChannel;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.InternetProtocolFamily;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.vertx.core.datagram.DatagramSocketOptions;
import io.vertx.core.net.ClientOptionsBase;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.transport.Transport;
import java.util.List;
import java.util.concurrent.ThreadFactory;

/**
 * Vert.x's NIO transport (through its public transport SPI), except that the listening socket hands every accepted
 * connection to a {@link ConnectionGate} first, which may close it before Vert.x sees it. This is the one place that
 * sees a connection before its first byte.
 */
final class GatedTransport implements Transport {
    private final io.vertx.core.spi.transport.Transport nio = Transport.NIO.implementation();
    private final Impl impl;

    GatedTransport(ConnectionGate gate) {
        this.impl = new Impl(gate);
    }

    @Override
    public String name() {
        return "nio (gated)";
    }

    @Override
    public boolean available() {
        return true;
    }

    @Override
    public Throwable unavailabilityCause() {
        return null;
    }

    @Override
    public io.vertx.core.spi.transport.Transport implementation() {
        return impl;
    }

    /** A listening NIO socket whose accepted connections pass the gate. */
    private static final class GatedServerChannel extends NioServerSocketChannel {
        private final ConnectionGate gate;

        GatedServerChannel(ConnectionGate gate) {
            this.gate = gate;
        }

        @Override
        protected int doReadMessages(List<Object> buf) throws Exception {
            int from = buf.size();
            int read = super.doReadMessages(buf);
            for (int i = buf.size() - 1; i >= from; i--) {
                Channel ch = (Channel) buf.get(i);
                if (!gate.admit(ch)) {
                    buf.remove(i);
                    ch.unsafe().closeForcibly(); // not registered with an event loop yet: just close the socket
                }
            }
            return read;
        }
    }

    /** NIO's implementation, with the gated listening socket. */
    private final class Impl implements io.vertx.core.spi.transport.Transport {
        private final ConnectionGate gate;

        Impl(ConnectionGate gate) {
            this.gate = gate;
        }

        @Override
        public ChannelFactory<? extends ServerChannel> serverChannelFactory(boolean domainSocket) {
            if (domainSocket) return nio.serverChannelFactory(true);
            return () -> new GatedServerChannel(gate);
        }

        @Override
        public boolean supportsDomainSockets() {
            return nio.supportsDomainSockets();
        }

        @Override
        public boolean supportFileRegion() {
            return nio.supportFileRegion();
        }

        @Override
        public boolean isAvailable() {
            return nio.isAvailable();
        }

        @Override
        public Throwable unavailabilityCause() {
            return nio.unavailabilityCause();
        }

        @Override
        public java.net.SocketAddress convert(io.vertx.core.net.SocketAddress address) {
            return nio.convert(address);
        }

        @Override
        public io.vertx.core.net.SocketAddress convert(java.net.SocketAddress address) {
            return nio.convert(address);
        }

        @Override
        public IoHandlerFactory ioHandlerFactory() {
            return nio.ioHandlerFactory();
        }

        @Override
        public EventLoopGroup eventLoopGroup(int type, int threads, ThreadFactory factory, int ioRatio) {
            return nio.eventLoopGroup(type, threads, factory, ioRatio);
        }

        @Override
        public DatagramChannel datagramChannel() {
            return nio.datagramChannel();
        }

        @Override
        public DatagramChannel datagramChannel(InternetProtocolFamily family) {
            return nio.datagramChannel(family);
        }

        @Override
        public ChannelFactory<? extends Channel> channelFactory(boolean domainSocket) {
            return nio.channelFactory(domainSocket);
        }

        @Override
        public void configure(DatagramChannel channel, DatagramSocketOptions options) {
            nio.configure(channel, options);
        }

        @Override
        public void configure(ClientOptionsBase options, int connectTimeout, boolean domainSocket, io.netty.bootstrap.Bootstrap bootstrap) {
            nio.configure(options, connectTimeout, domainSocket, bootstrap);
        }

        @Override
        public void configure(NetServerOptions options, boolean domainSocket, io.netty.bootstrap.ServerBootstrap bootstrap) {
            nio.configure(options, domainSocket, bootstrap);
        }
    }
}

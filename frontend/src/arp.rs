//! Gratuitous ARP: after taking the canonical IP address, tell every neighbour on the link at
//! once that it now lives at this interface's MAC, instead of waiting for their caches to
//! expire (which would keep sending visitors to the dead holder for minutes).

use std::net::Ipv4Addr;

/// Broadcasts one gratuitous ARP request for `ip` on interface `iface`.
pub fn announce(iface: &str, ip: Ipv4Addr) -> std::io::Result<()> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| std::io::Error::other("interface name with a NUL byte"))?;
    // SAFETY: plain libc calls on a socket we own; every buffer is sized by its type.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        if index == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ARP as u16).to_be()),
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let result = (|| {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
                *d = *s as libc::c_char;
            }
            if libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let hw = req.ifr_ifru.ifru_hwaddr.sa_data;
            let mac: [u8; 6] = std::array::from_fn(|i| hw[i] as u8);
            let frame = frame(mac, ip);
            let mut to: libc::sockaddr_ll = std::mem::zeroed();
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
            to.sll_ifindex = index as i32;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if sent < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })();
        libc::close(fd);
        result
    }
}

/// An Ethernet frame holding an ARP request for `ip` from `ip` at `mac`, to everyone.
fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // broadcast
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    // target hardware address left zero; target protocol address = our own: gratuitous
    f[38..42].copy_from_slice(&ip.octets());
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_frame_is_a_gratuitous_arp_request() {
        let f = super::frame([2, 0, 0, 0, 0, 1], "10.0.0.10".parse().unwrap());
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &[10, 0, 0, 10]);
        assert_eq!(
            f[28..32],
            f[38..42],
            "sender and target address are the same"
        );
    }
}

import Testing

import LayerIndex

@Suite struct BuiltinEmbedderTests {
    let embedder = BuiltinEmbedder()

    // MARK: - Identity, determinism, normalization

    @Test func idEncodesVersionAndDimension() {
        #expect(embedder.id == "builtin-ngram-v1-d512")
        #expect(embedder.dimension == 512)
        #expect(BuiltinEmbedder(dimension: 256).id == "builtin-ngram-v1-d256")
        #expect(BuiltinEmbedder(dimension: 256).embed("auto br0").count == 256)
    }

    @Test func sameTextSameVector() {
        let text = ConfigCorpus.documents[0].text
        let first = embedder.embed(text)
        #expect(embedder.embed(text) == first)
        #expect(BuiltinEmbedder().embed(text) == first)
        #expect(embedder.embed(batch: [text, "x"])[0] == first)
    }

    /// Computed once from this input and pinned: any change to tokens, tables, weights or hashing
    /// shows up here, and must come with a new `BuiltinEmbedder.version` (the index is rebuilt).
    @Test func pinnedComponents() {
        let vector = embedder.embed("auto br0\niface br0 inet static\n    bridge_ports eth0 eth1\n")
        let nonZero = vector.enumerated().filter { $0.element != 0 }.prefix(6).map { "\($0.offset):\($0.element)" }
        #expect(nonZero == BuiltinEmbedderTests.pinned, "\(nonZero)")
    }
    static let pinned = ["2:-0.05357761", "5:-0.18559828", "9:-0.18559828", "12:0.04792127", "15:-0.05357761", "20:-0.05357761"]

    @Test(arguments: ["a", "PermitRootLogin no", "é☕ ünïcödé", ConfigCorpus.documents[11].text, String(repeating: "bridge ", count: 10_000)])
    func vectorsAreUnitLength(_ text: String) {
        let vector = embedder.embed(text)
        #expect(vector.count == 512)
        let norm = vector.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
        #expect(abs(norm - 1) < 1e-5)
    }

    @Test(arguments: ["", " ", "\n\n", "= : [] {} -- ; # /", "\t=\t"])
    func textWithoutLettersOrDigitsIsTheZeroVector(_ text: String) {
        #expect(embedder.embed(text) == [Float](repeating: 0, count: 512))
    }

    @Test func invalidUTF8IsEmbedded() {
        let bytes: [UInt8] = [0x62, 0x72, 0xFF, 0x30, 0xC3]
        let vector = bytes.withUnsafeBufferPointer { embedder.embed(utf8: $0) }
        #expect(vector.contains { $0 != 0 })
    }

    // MARK: - What it captures that exact words do not

    @Test func configSpellingsMeetTheirWords() {
        func similarity(_ a: String, _ b: String) -> Float { cosine(embedder.embed(a), embedder.embed(b)) }
        let unrelated = similarity("bridge", "PasswordAuthentication")
        #expect(similarity("bridge", "bridged") > 0.5)
        #expect(similarity("bridges", "bridge_ports br0") > unrelated + 0.2)
        #expect(similarity("interfaces", "iface") > unrelated + 0.2)
        #expect(similarity("root login", "PermitRootLogin yes") > 0.5)
        #expect(similarity("dns servers", "nameserver 9.9.9.9") > unrelated + 0.2)
        #expect(similarity("ListenAddress", "listen address") > 0.5)
        #expect(similarity("eth0", "eth1") > 0.5)
    }

    // MARK: - Retrieval on a corpus of config files, against exact words

    @Test func configQueriesFindTheRightFiles() {
        let documents = ConfigCorpus.documents.map { embedder.embed($0.path + "\n" + $0.text) }
        let builtin = ConfigCorpus.queries.map { query in
            ranking(embedder.embed(query.text), documents)
        }
        let baselineDocuments = ConfigCorpus.documents.map { ExactWords($0.path + "\n" + $0.text) }
        let baseline = ConfigCorpus.queries.map { query in
            let q = ExactWords(query.text)
            return baselineDocuments.indices.sorted {
                let (a, b) = (q.cosine(baselineDocuments[$0]), q.cosine(baselineDocuments[$1]))
                return a != b ? a > b : $0 < $1
            }
        }

        var (builtinMRR, baselineMRR, builtinMAP, baselineMAP) = (0.0, 0.0, 0.0, 0.0)
        for (q, query) in ConfigCorpus.queries.enumerated() {
            let builtinRank = firstRelevantRank(builtin[q], query.relevant)
            let baselineRank = firstRelevantRank(baseline[q], query.relevant)
            builtinMRR += 1 / Double(builtinRank)
            baselineMRR += 1 / Double(baselineRank)
            builtinMAP += averagePrecision(builtin[q], query.relevant)
            baselineMAP += averagePrecision(baseline[q], query.relevant)
            let top = builtin[q].prefix(3).map { ConfigCorpus.documents[$0].path }
            print("BuiltinEmbedder query \(query.text.debugDescription): builtin rank \(builtinRank) AP \(averagePrecision(builtin[q], query.relevant)), exact words rank \(baselineRank) AP \(averagePrecision(baseline[q], query.relevant)), top 3 \(top)")
            #expect(builtinRank <= 3, "\(query.text): top 3 \(top)")
        }
        let count = Double(ConfigCorpus.queries.count)
        (builtinMRR, baselineMRR, builtinMAP, baselineMAP) = (builtinMRR / count, baselineMRR / count, builtinMAP / count, baselineMAP / count)
        print("BuiltinEmbedder over \(ConfigCorpus.queries.count) queries: MRR builtin \(builtinMRR), exact words \(baselineMRR); MAP builtin \(builtinMAP), exact words \(baselineMAP)")
        #expect(builtinMRR > baselineMRR + 0.1)
        #expect(builtinMAP > baselineMAP + 0.1)
        #expect(builtinMRR >= 0.9)

        // A question about bridges puts the bridge configs (and only them) first.
        let bridgeFiles = Set(ConfigCorpus.documents.indices.filter { ConfigCorpus.documents[$0].tags.contains("bridge") })
        #expect(Set(builtin[0].prefix(bridgeFiles.count)) == bridgeFiles, "\(builtin[0].map { ConfigCorpus.documents[$0].path })")
    }

    @Test func similarFilesAreNearestNeighbours() {
        // Each bridge config's nearest other file is a bridge config.
        let documents = ConfigCorpus.documents.map { embedder.embed($0.path + "\n" + $0.text) }
        for (i, document) in ConfigCorpus.documents.enumerated() where document.tags.contains("bridge") {
            let nearest = ranking(documents[i], documents).first { $0 != i }!
            #expect(ConfigCorpus.documents[nearest].tags.contains("bridge"), "\(document.path) → \(ConfigCorpus.documents[nearest].path)")
        }
    }

    // MARK: - Helpers

    func ranking(_ query: [Float], _ documents: [[Float]]) -> [Int] {
        let scores = documents.map { cosine(query, $0) }
        return scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
    }

    /// Mean of the precision at the rank of each relevant file.
    func averagePrecision(_ ranking: [Int], _ relevant: Set<String>) -> Double {
        var (found, sum) = (0, 0.0)
        for (i, document) in ranking.enumerated() where relevant.contains(ConfigCorpus.documents[document].path) {
            found += 1
            sum += Double(found) / Double(i + 1)
        }
        return sum / Double(relevant.count)
    }

    func firstRelevantRank(_ ranking: [Int], _ relevant: Set<String>) -> Int {
        1 + ranking.firstIndex { relevant.contains(ConfigCorpus.documents[$0].path) }!
    }
}

private func cosine(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
}

/// The baseline: a bag of exact lowercase words (runs of ASCII letters and digits), cosine of counts.
private struct ExactWords {
    var counts: [String: Double] = [:]

    init(_ text: String) {
        var word = ""
        for scalar in text.lowercased().unicodeScalars {
            if scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) {
                word.unicodeScalars.append(scalar)
            } else if !word.isEmpty {
                counts[word, default: 0] += 1
                word = ""
            }
        }
        if !word.isEmpty { counts[word, default: 0] += 1 }
    }

    var norm: Double { counts.values.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    func cosine(_ other: ExactWords) -> Double {
        let dot = counts.reduce(0) { $0 + $1.value * (other.counts[$1.key] ?? 0) }
        let n = norm * other.norm
        return n == 0 ? 0 : dot / n
    }
}

/// Short, realistic configuration files and questions about them.
enum ConfigCorpus {
    struct Document {
        var path: String
        var tags: Set<String>
        var text: String
    }

    struct Query {
        var text: String
        var relevant: Set<String>
    }

    static let queries: [Query] = [
        Query(text: "which interfaces are bridges", relevant: paths(tagged: "bridge")),
        Query(text: "bridge configuration", relevant: paths(tagged: "bridge")),
        Query(text: "ssh root login", relevant: ["/etc/ssh/sshd_config"]),
        Query(text: "dns servers", relevant: paths(tagged: "dns")),
        Query(text: "vlan tagged interface", relevant: ["/etc/systemd/network/10-vlan100.netdev", "/etc/network/interfaces.d/vlan20"]),
        Query(text: "bonding two network cards", relevant: ["/etc/network/interfaces.d/bond0"]),
        Query(text: "web server with tls certificate", relevant: ["/etc/nginx/sites-available/example.com"]),
        Query(text: "static ip address and default gateway", relevant: paths(tagged: "static")),
        Query(text: "start a service after the network is online", relevant: ["/etc/systemd/system/webapp.service"]),
        Query(text: "mount filesystems at boot", relevant: ["/etc/fstab"]),
        Query(text: "run a backup every night", relevant: ["/etc/systemd/system/backup.timer", "/etc/cron.d/backup"]),
        Query(text: "let admins use sudo without a password", relevant: ["/etc/sudoers.d/admins"]),
        Query(text: "bridged ethernet ports", relevant: paths(tagged: "bridge")),
        Query(text: "ip forwarding", relevant: ["/etc/sysctl.d/99-forwarding.conf"]),
        Query(text: "resolver settings", relevant: ["/etc/resolv.conf", "/etc/systemd/resolved.conf"]),
        Query(text: "disable password login over ssh", relevant: ["/etc/ssh/sshd_config"]),
        Query(text: "reverse proxy", relevant: ["/etc/nginx/sites-available/example.com"]),
        Query(text: "which addresses are assigned by dhcp", relevant: paths(tagged: "dhcp")),
        Query(text: "local host names", relevant: ["/etc/hosts", "/etc/hostname"]),
        Query(text: "swap partition", relevant: ["/etc/fstab"]),
        Query(text: "nginx worker processes", relevant: ["/etc/nginx/nginx.conf"]),
    ]

    static func paths(tagged tag: String) -> Set<String> {
        Set(documents.filter { $0.tags.contains(tag) }.map(\.path))
    }

    static let documents: [Document] = [
        Document(path: "/etc/network/interfaces", tags: ["bridge", "static"], text: """
            # This file describes the network interfaces available on your system
            # and how to activate them. For more information, see interfaces(5).
            source /etc/network/interfaces.d/*

            auto lo
            iface lo inet loopback

            auto br0
            iface br0 inet static
                address 192.168.1.10/24
                gateway 192.168.1.1
                bridge_ports eno1 eno2
                bridge_stp off
                bridge_fd 0
            """),
        Document(path: "/etc/netplan/01-br0.yaml", tags: ["bridge", "static", "dns"], text: """
            network:
              version: 2
              renderer: networkd
              ethernets:
                enp3s0:
                  dhcp4: false
              bridges:
                br0:
                  interfaces: [enp3s0]
                  addresses: [10.0.0.5/24]
                  routes:
                    - to: default
                      via: 10.0.0.1
                  nameservers:
                    addresses: [10.0.0.1, 1.1.1.1]
                  parameters:
                    stp: true
                    forward-delay: 4
            """),
        Document(path: "/etc/systemd/network/25-br0.netdev", tags: ["bridge"], text: """
            [NetDev]
            Name=br0
            Kind=bridge

            [Bridge]
            STP=yes
            """),
        Document(path: "/etc/systemd/network/25-br0-en.network", tags: ["bridge"], text: """
            [Match]
            Name=enp2s0

            [Network]
            Bridge=br0
            """),
        Document(path: "/etc/network/interfaces.d/eth0", tags: ["static", "dns"], text: """
            auto eth0
            iface eth0 inet static
                address 203.0.113.7
                netmask 255.255.255.0
                gateway 203.0.113.1
                dns-nameservers 203.0.113.53 203.0.113.54
            """),
        Document(path: "/etc/netplan/50-cloud-init.yaml", tags: ["dhcp"], text: """
            # This file is generated from information provided by the datasource. Changes
            # to it will not persist across an instance reboot.
            network:
              version: 2
              ethernets:
                ens3:
                  dhcp4: true
                  match:
                    macaddress: fa:16:3e:2b:9c:01
                  set-name: ens3
            """),
        Document(path: "/etc/systemd/network/20-wired.network", tags: ["dns", "dhcp"], text: """
            [Match]
            Name=en*

            [Network]
            DHCP=yes
            DNS=1.1.1.1
            DNS=9.9.9.9
            """),
        Document(path: "/etc/systemd/network/10-vlan100.netdev", tags: [], text: """
            [NetDev]
            Name=vlan100
            Kind=vlan

            [VLAN]
            Id=100
            """),
        Document(path: "/etc/network/interfaces.d/vlan20", tags: [], text: """
            auto eth0.20
            iface eth0.20 inet manual
                vlan-raw-device eth0
            """),
        Document(path: "/etc/network/interfaces.d/bond0", tags: ["dhcp"], text: """
            auto bond0
            iface bond0 inet dhcp
                bond-slaves eno1 eno2
                bond-mode 802.3ad
                bond-miimon 100
                bond-lacp-rate fast
            """),
        Document(path: "/etc/ssh/sshd_config", tags: [], text: """
            Include /etc/ssh/sshd_config.d/*.conf
            Port 22
            ListenAddress 0.0.0.0
            PermitRootLogin no
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM yes
            X11Forwarding no
            PrintMotd no
            AcceptEnv LANG LC_*
            Subsystem sftp /usr/lib/openssh/sftp-server
            """),
        Document(path: "/etc/ssh/ssh_config", tags: [], text: """
            Host *
                ForwardAgent no
                ForwardX11 no
                PasswordAuthentication yes
                HashKnownHosts yes
                GSSAPIAuthentication yes
                SendEnv LANG LC_*
            """),
        Document(path: "/etc/nginx/sites-available/example.com", tags: [], text: """
            server {
                listen 443 ssl http2;
                server_name example.com www.example.com;
                ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;
                ssl_certificate_key /etc/letsencrypt/live/example.com/privkey.pem;
                root /var/www/example.com;
                location / {
                    proxy_pass http://127.0.0.1:8080;
                    proxy_set_header Host $host;
                }
            }
            """),
        Document(path: "/etc/nginx/nginx.conf", tags: [], text: """
            user www-data;
            worker_processes auto;
            pid /run/nginx.pid;
            events {
                worker_connections 768;
            }
            http {
                sendfile on;
                include /etc/nginx/mime.types;
                access_log /var/log/nginx/access.log;
                include /etc/nginx/sites-enabled/*;
            }
            """),
        Document(path: "/etc/systemd/system/webapp.service", tags: [], text: """
            [Unit]
            Description=Web application
            After=network-online.target
            Wants=network-online.target

            [Service]
            User=webapp
            ExecStart=/usr/local/bin/webapp --port 8080
            Restart=on-failure

            [Install]
            WantedBy=multi-user.target
            """),
        Document(path: "/etc/systemd/system/backup.timer", tags: [], text: """
            [Unit]
            Description=Nightly backup

            [Timer]
            OnCalendar=*-*-* 02:30:00
            Persistent=true

            [Install]
            WantedBy=timers.target
            """),
        Document(path: "/etc/cron.d/backup", tags: [], text: """
            SHELL=/bin/sh
            PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
            30 2 * * * root /usr/local/bin/backup.sh > /var/log/backup.log 2>&1
            """),
        Document(path: "/etc/hosts", tags: [], text: """
            127.0.0.1   localhost
            127.0.1.1   web01.example.com web01
            ::1         localhost ip6-localhost ip6-loopback
            ff02::1     ip6-allnodes
            ff02::2     ip6-allrouters
            """),
        Document(path: "/etc/resolv.conf", tags: ["dns"], text: """
            nameserver 8.8.8.8
            nameserver 8.8.4.4
            search example.com
            options edns0 trust-ad
            """),
        Document(path: "/etc/systemd/resolved.conf", tags: ["dns"], text: """
            [Resolve]
            DNS=9.9.9.9 149.112.112.112
            FallbackDNS=1.1.1.1
            DNSSEC=yes
            DNSOverTLS=opportunistic
            """),
        Document(path: "/etc/fstab", tags: [], text: """
            # /etc/fstab: static file system information.
            # <file system> <mount point> <type> <options> <dump> <pass>
            UUID=2f1c7e0a-5b8e-4c1d-9f3a-0e6d1b2c3a4f /     ext4 errors=remount-ro 0 1
            UUID=7A3B-1C2D                            /boot/efi vfat umask=0077 0 1
            /swapfile                                 none  swap sw 0 0
            """),
        Document(path: "/etc/sudoers.d/admins", tags: [], text: """
            # Members of the admin group may gain root privileges
            %admin ALL=(ALL) NOPASSWD: ALL
            """),
        Document(path: "/etc/sysctl.d/99-forwarding.conf", tags: [], text: """
            net.ipv4.ip_forward=1
            net.ipv6.conf.all.forwarding=1
            """),
        Document(path: "/etc/hostname", tags: [], text: """
            web01
            """),
    ]
}

"""Reader adapters: NFC cards through nfcpy, QR scanners through pyserial."""

# Replace the folder $2 with the contents of the file $1 (named $3 when it was uploaded): archives are
# unpacked, any other file is copied in. The old folder goes only once the new one is complete.
set -eu
file=$1 dest=$2 name=$3
partial="$dest.partial"
rm -rf "$partial"
mkdir -p "$partial"
case "$name" in
  *.tar.gz|*.tgz|*.tar|*.tar.xz|*.txz|*.tar.bz2|*.tbz2) tar -xf "$file" -C "$partial" ;;
  *.zip|*.whl) python3 -m zipfile -e "$file" "$partial" ;;
  *)
    cp "$file" "$partial/$name"
    # A script or program keeps working when copied alone: make it executable like the upload meant.
    if head -c 4 "$partial/$name" | grep -q -e '^#!' -e "^$(printf '\177')ELF"; then chmod +x "$partial/$name"; fi
    ;;
esac
rm -f "$file"
rm -rf "$dest.old"
if [ -e "$dest" ]; then mv "$dest" "$dest.old"; fi
mv "$partial" "$dest"
rm -rf "$dest.old"

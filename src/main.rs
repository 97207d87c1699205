fn main() {
    println!("claudit");
}
